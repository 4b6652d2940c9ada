"""`python -m daemon.keeper CONFIG`: run one run's keeper process (daemon/keeper/process.py)."""

from daemon.keeper.process import main

raise SystemExit(main())
