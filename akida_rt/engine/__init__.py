"""The integer engine (software backend), its BLAS threading, the learning rule and
statistics. May import: format, errors."""
