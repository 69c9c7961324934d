"""HTTP interfaces: NeuVector's /v1 and the native /api, thin adapters over the service."""
