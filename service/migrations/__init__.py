"""Alembic migrations of the store, run programmatically by ``service.store.db.migrate``."""
