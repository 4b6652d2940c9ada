"""The control server: requests from the CLI, answered one handler per area."""
