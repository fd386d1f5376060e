"""`python -m akida_rt.demo`: the demo of `make demo` (akida_rt/demo/run.py)."""

from akida_rt.demo.run import main

raise SystemExit(main())
