"""Render the module graph for humans: a table, DOT or Mermaid."""

from __future__ import annotations

from app.kernel.graph import ModulePlan


def _all_modules(plan: ModulePlan) -> list[str]:
    """Load order first, then the modules it leaves out (those on or behind a cycle)."""
    return plan.load_order + sorted(set(plan.nodes) - set(plan.load_order))


def to_dot(plan: ModulePlan) -> str:
    lines = ["digraph modules {", "  rankdir=LR;"]
    for name in _all_modules(plan):
        style = " [style=dashed]" if name in plan.disabled else ""
        lines.append(f'  "{name}"{style};')
        for dep in plan.nodes[name].dependencies:
            lines.append(f'  "{name}" -> "{dep}";')
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(plan: ModulePlan) -> str:
    lines = ["graph LR"]
    for name in _all_modules(plan):
        deps = plan.nodes[name].dependencies
        if not deps:
            lines.append(f"  {name}")
        lines.extend(f"  {name} --> {dep}" for dep in deps)
    return "\n".join(lines)


def to_table(report: dict) -> str:
    rows = [("#", "module", "status", "init ms", "depends on")]
    for name in report["load_order"]:
        info = report["modules"][name]
        init = "" if info["init_ms"] is None else f"{info['init_ms']:.1f}"
        rows.append((str(info["load_position"]), name, info["status"], init, ", ".join(info["dependencies"]) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
