"""Signed checkpoints: the chain's head `(sequence, hash)` with an HMAC-SHA256 made with a key
derived from CREDIT_SECRET_KEY.

Why HMAC and not a public-key signature: the contract says "signed with the secret key", the
standard library has it (no new dependency; `cryptography` is not one), and what a checkpoint
must prove is only that this system issued it: tampering is caught by the hash it carries,
which an outsider compares without any key. The key is derived (HMAC of a fixed label), so a
checkpoint's signature is no token signature and the token key never signs anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

ALGORITHM = "HMAC-SHA256"
_LABEL = b"credit-system audit checkpoint v1"
SIGNED_FIELDS = ("sequence", "hash", "signed_at")


class CheckpointSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest()

    def sign(self, sequence: int, head_hash: str, signed_at: datetime) -> dict[str, Any]:
        checkpoint: dict[str, Any] = {"sequence": sequence, "hash": head_hash, "signed_at": signed_at.isoformat()}
        return {**checkpoint, "algorithm": ALGORITHM, "signature": self._mac(checkpoint)}

    def is_genuine(self, checkpoint: Any) -> bool:
        """A checkpoint this key signed, unchanged (any other shape: False)."""
        if not isinstance(checkpoint, dict) or checkpoint.get("algorithm") != ALGORITHM:
            return False
        if not all(field in checkpoint for field in SIGNED_FIELDS) or not isinstance(checkpoint.get("signature"), str):
            return False
        return hmac.compare_digest(self._mac(checkpoint), checkpoint["signature"])

    def _mac(self, checkpoint: dict[str, Any]) -> str:
        message = json.dumps(
            {field: checkpoint[field] for field in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":")
        )
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()
