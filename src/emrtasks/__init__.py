"""emrtasks: create tasks in any clinic's EMR through one HTTP API."""

__version__ = "0.1.0"
