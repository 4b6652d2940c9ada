"""The recorder process (`python -m daemon.recorder`) and the replay player node: MCAP files."""
