"""Package data: the demo program produced by the toolchain (tools/make_demo_program.py)."""
