"""HTML pages served beside the JSON API: `link/`, the clinic-facing Link flow, and `console/`, the
operators' console. Pages call services, never storage."""
