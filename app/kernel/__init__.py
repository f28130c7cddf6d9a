"""The module kernel: contract, discovery, graph checks, lifecycle and health."""

from app.kernel.findings import Finding, WiringError
from app.kernel.module import Module

__all__ = ["Finding", "Module", "WiringError"]
