"""Adapters to the outside world: database, cache, rate-limit storage."""
