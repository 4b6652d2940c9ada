"""flow's benchmark against raw pyzmq and dora-rs (`python -m bench`, docs/performance.md)."""
