"""Alembic migrations: env.py and the revision scripts, shipped in the package."""
