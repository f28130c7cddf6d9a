"""A fresh migrated SQLite database for every test, at the cost of a file copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from app.infrastructure.migrations import upgrade


class SqliteTemplate:
    """Migrate once, copy the file for every test: running the migrations per test would cost
    far more than the test."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "template.sqlite3"
        upgrade(f"sqlite:///{self.path}")

    def fresh(self, folder: Path) -> str:
        """The URL of a new copy of the migrated database in `folder`."""
        target = folder / "credit.sqlite3"
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"
