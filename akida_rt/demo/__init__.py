"""The demo of `make demo`: digits through akidad, a DVS stream, edge learning."""
