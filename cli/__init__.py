"""The `flow` command-line interface."""
