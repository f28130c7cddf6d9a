"""A module packaged the way app/modules/<name>/ packages are, with the class in a submodule."""

from tests.fixtures_modules.nested.impl import NestedModule

__all__ = ["NestedModule"]
