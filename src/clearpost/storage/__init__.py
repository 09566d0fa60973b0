"""Persistence: SQLAlchemy Core over SQLite (default) or PostgreSQL. Imports only ``core``."""
