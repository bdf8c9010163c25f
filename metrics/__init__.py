"""benchlab collection and storage: settings, models, store, collectors, exporters, sidecar."""
