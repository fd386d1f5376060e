"""The demo of `make demo`: digits through akidad, a DVS stream, edge learning.
May import: the akida_rt facade and stream; client and tools lazily."""
