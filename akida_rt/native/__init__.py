"""The C kernels, akida_rt.native._kernels (built from akida_rt/csrc/ by setup.py): the
loops numpy cannot make fast, each behind the Python function it replaces.

tests/native_reference.py keeps the numpy forms each kernel must equal bit for bit.
"""
