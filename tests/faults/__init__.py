"""Fault-tolerance tests: real servers on a throwaway PostgreSQL cluster and Redis server,
with backends stopped, workers killed and requests retried while money moves."""
