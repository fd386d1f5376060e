"""Edge learning on a model's last layer: compile, fit, add classes, the learned state."""
