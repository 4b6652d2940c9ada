"""Several machines: the coordinator's and the member's link tasks, keys and records."""
