"""trio supervision of runs: runtime, supervisor, node slots, dynamic nodes, recovery."""
