"""`python -m cli`: the same as the `flow` command."""

from cli.main import entry

entry()
