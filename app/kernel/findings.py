"""Wiring findings: stable codes, a message and a hint each."""

from __future__ import annotations

from dataclasses import asdict, dataclass

CYCLE = "MOD-E001"
UNKNOWN_DEPENDENCY = "MOD-E002"
UNDECLARED_DEPENDENCY = "MOD-E003"
UNUSED_DEPENDENCY = "MOD-W004"
DUPLICATE_NAME = "MOD-E005"
ROUTE_COLLISION = "MOD-E006"
DISABLED_BUT_NEEDED = "MOD-W007"
NOT_WIRED = "MOD-W008"
IMPORT_FAILED = "MOD-E009"
UNRESOLVED_PARAMETER = "MOD-E010"
UNKNOWN_DISABLED = "MOD-W011"
UNKNOWN_EVENT_TYPE = "MOD-W012"
IN_TRANSACTION_SUBSCRIBER = "MOD-E013"
NO_EVENT_HANDLER = "MOD-E014"


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    hint: str
    module: str | None = None

    @property
    def is_error(self) -> bool:
        return self.code.startswith("MOD-E")

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f"[{self.module}] " if self.module else ""
        return f"{self.code} {where}{self.message}\n    hint: {self.hint}"


class WiringError(RuntimeError):
    """The module graph is broken; raised before any provider is called."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        errors = [f for f in findings if f.is_error]
        super().__init__("module wiring failed:\n" + "\n".join(str(f) for f in errors))
