"""Keys whose latest write never reached a shared cache, kept until they are deleted there.

A write that cannot reach the backend (down, or stalled) would leave the old value there
for every process to serve once it answers again (a balance from before, a logged-out
token as valid). So the key is remembered: this process reads it as a miss, and a
background thread deletes it from the backend as soon as the backend answers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)


class UnsyncedKeys:
    """`key in unsynced` while a lost write's key is still to be deleted from the backend.

    delete(keys) deletes keys from the backend and says whether the backend answered;
    on_synced() is called after each batch the backend answered.
    """

    LIMIT = 100_000
    BATCH = 1000
    INTERVAL = 0.2  # seconds between attempts while the backend does not answer

    def __init__(self, delete: Callable[[list[str]], bool], on_synced: Callable[[], None]) -> None:
        self._delete = delete
        self._on_synced = on_synced
        self._generations: dict[str, int] = {}  # key -> generation of its latest lost write
        self._generation = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def __contains__(self, key: str) -> bool:
        return key in self._generations

    def __len__(self) -> int:
        return len(self._generations)

    def hide(self, keys: list[str], values: list[str | None]) -> list[str | None]:
        """values read for keys, with None for every key still unsynced."""
        unsynced = self._generations
        if not unsynced:
            return values
        return [None if key in unsynced else value for key, value in zip(keys, values, strict=True)]

    def remember(self, keys: Iterable[str]) -> None:
        """These keys' writes were lost: never trust what the backend holds for them until deleted."""
        keys = list(keys)
        if not keys:
            return
        with self._lock:
            if len(self._generations) >= self.LIMIT:
                log.error("too many cache keys to resync; some may stay stale until they expire")
                return
            self._generation += 1
            self._generations.update(dict.fromkeys(keys, self._generation))
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(target=self._resync, name="cache-resync", daemon=True)
                self._thread.start()

    def close(self) -> None:
        self._closed.set()

    def _resync(self) -> None:
        while not self._closed.wait(self.INTERVAL):
            with self._lock:
                pending = dict(self._generations)
                if not pending:
                    self._thread = None
                    return
            keys = list(pending)
            if not all(self._delete(keys[i : i + self.BATCH]) for i in range(0, len(keys), self.BATCH)):
                continue
            self._on_synced()
            with self._lock:
                for key, generation in pending.items():
                    if self._generations.get(key) == generation:  # not lost again meanwhile
                        del self._generations[key]
