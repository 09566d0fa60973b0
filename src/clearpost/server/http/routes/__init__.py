"""Client API routes under /v1."""
