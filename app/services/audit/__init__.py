"""The audit trail: a hash chain of every event (chain.py), its export files (export.py),
signed checkpoints (checkpoint.py), credential masking (masking.py) and the use cases (trail.py)."""
