"""The integer engine (software backend), its BLAS threading, the learning rule and statistics."""
