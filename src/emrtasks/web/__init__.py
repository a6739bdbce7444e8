"""HTML pages served beside the JSON API: `link/`, the clinic-facing Link flow. Pages call services,
never storage."""
