"""One Alembic revision script per schema change (Alembic skips this file)."""
