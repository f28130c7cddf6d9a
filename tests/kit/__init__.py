"""The testing kit (app/testing) as a module author uses it."""
