"""`python -m akida_rt.daemon`: run akidad."""

import sys

from .app import main

sys.exit(main())
