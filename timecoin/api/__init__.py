"""The HTTP API: the site (JSON-RPC, /health, /metrics), the RPC methods, and the RPC client."""
