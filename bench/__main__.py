"""`python -m bench [--quick] [--json PATH] [--no-dora]`."""

import sys

from bench.run import main

sys.exit(main())
