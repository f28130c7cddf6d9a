"""One module per domain; each is thin: routes, health, wiring to services."""
