"""`python -m akida_rt`: the akida_rt command line (the same as `akida` and `akida-rt`)."""

import sys

from akida_rt.cli.main import main

sys.exit(main())
