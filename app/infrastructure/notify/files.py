"""Writing a message into a folder (the `file://` adapters): one file per message, private."""

from __future__ import annotations

import os
from pathlib import Path


def folder_of(url: str, default: Path) -> Path:
    """`file://` is `default`; `file:///some/dir` is that directory."""
    rest = url.removeprefix("file://")
    return Path(rest) if rest else default


def write_private(folder: Path, name: str, content: bytes) -> Path:
    """Write content to folder/name (0600, the folder 0700 when made), whole or not at all."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    partial = folder / f".{name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
    os.replace(partial, path)  # a reader never sees half a message
    return path
