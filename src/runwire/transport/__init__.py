"""The edge: HTTP routes, the WebSocket endpoint, and the mapping of errors to statuses and codes."""
