"""`python -m cli`: the same as the `flow` command."""

import sys

from cli.main import main

sys.exit(main())
