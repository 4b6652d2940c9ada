"""The flow daemon: a trio supervisor of dataflow runs."""

__version__ = "0.1.0"
