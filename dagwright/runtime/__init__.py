"""Back ends that execute a checked graph."""
