"""Model and Sequence: the user's object, its summary, the zoo and the device-facing API."""
