"""Benchmarks: the project against a raw Flask + psycopg floor and a Flask hello-world ceiling."""
