"""The module class itself, one level below its package."""

from __future__ import annotations

from app.kernel import Module


class NestedModule(Module):
    NAME = "nested"
