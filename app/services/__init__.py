"""Business logic: one unit of work (one DB transaction) per use case."""
