"""Finding module classes: in app/modules/, in CREDIT_MODULES_EXTRA, in the entry-point group."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from typing import Any

from app.kernel import findings as codes
from app.kernel.findings import Finding
from app.kernel.module import Module, is_module_class

ENTRY_POINT_GROUP = "credit_system.modules"


@dataclass(frozen=True)
class FoundModule:
    cls: type[Module]
    source: str


def scan_package(package_name: str = "app.modules") -> list[FoundModule]:
    """Every module class defined in the package's submodules, at any depth, in name order."""
    package = importlib.import_module(package_name)
    found = []
    # Recursive: a module packaged as app/modules/<name>/ may define its class in a submodule.
    for info in sorted(pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."), key=lambda i: i.name):
        submodule = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(submodule, is_module_class):
            if obj.__module__ == submodule.__name__:
                found.append(FoundModule(obj, info.name))
    return found


def load_import_path(path: str) -> Any:
    """The object at `package.module:Attribute` (dotted attributes allowed)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ImportError(f"'{path}' is not of the form package.module:Class")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def extra_modules(import_paths: tuple[str, ...]) -> tuple[list[FoundModule], list[Finding]]:
    """Load third-party module classes from import paths and the entry-point group."""
    candidates: list[tuple[str, str, Callable[[], Any]]] = [
        (path, f"CREDIT_MODULES_EXTRA {path}", partial(load_import_path, path)) for path in import_paths
    ]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        candidates.append((ep.value, f"entry point {ep.name}", ep.load))
    found, problems = [], []
    for path, source, load in candidates:
        try:
            cls = load()
        except Exception as exc:  # any import-time failure of third-party code is a finding
            problems.append(
                Finding(
                    codes.IMPORT_FAILED,
                    f"cannot import extra module {path}: {exc}",
                    "check the import path (package.module:Class) and that the package is installed",
                )
            )
            continue
        if not is_module_class(cls):
            problems.append(
                Finding(codes.IMPORT_FAILED, f"{path} is not a module class", "subclass app.kernel.Module and set NAME")
            )
            continue
        found.append(FoundModule(cls, source))
    return found, problems
