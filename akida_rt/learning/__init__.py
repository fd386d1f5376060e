"""Edge learning on a model's layers and learning config: compile, fit, add classes, the
learned state. May import: engine, format, errors (never model)."""
