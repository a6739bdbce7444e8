"""Use cases and their transaction boundaries: what the API, the CLI and the worker call."""
