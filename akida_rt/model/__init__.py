"""Model and Sequence: the user's object, where it runs, its summary, the zoo and the
device-facing API. May import: learning, mapping, engine, format, errors."""
