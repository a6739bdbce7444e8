"""Metrics (Prometheus), traces (OpenTelemetry) and JSON logs. Imported by bootstrap and the API only;
the layers below see what they need through `service.telemetry` hooks and values they are handed."""
