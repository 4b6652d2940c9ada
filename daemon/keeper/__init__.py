"""The blocking per-run keeper process: parent of a run's nodes, writer of their logs; no trio."""
