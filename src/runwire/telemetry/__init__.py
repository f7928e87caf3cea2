"""What the server reports about itself: logs (``logs``), Prometheus metrics
(``metrics``) and OpenTelemetry traces (``traces``). Each app owns its ``Metrics`` and
``Tracing``; nothing here is imported until a module of it is."""
