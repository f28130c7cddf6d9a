"""The dashboard's pictures, rendered here as SVG: the page only places them.

Volumes are charted by pygal (a maintained SVG charting library; its optional tooltip
script is left out, so nothing is loaded from elsewhere). The module graph is laid out by
hand: each module in the column of its dependency depth, an arrow from each dependency.
"""

from __future__ import annotations

import re
import sys
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from pygal.style import Style

from app.services.reports.reads import TYPE_KEYS

# pygal appends a legacy import hook to sys.meta_path for its map plugins (unused here); on
# Python 3.11+ it makes every failed import anywhere in the process warn (ImportWarning,
# e.g. zoneinfo looking for the optional tzdata package). Take it out again.
sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, pygal.PluginImportFixer)]

_CHART_STYLE = Style(
    background="white",
    plot_background="white",
    colors=("#2e7d32", "#c62828", "#1565c0", "#f9a825"),
    font_family="sans-serif",
)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_STATUS_COLORS = {"initialized": "#2e7d32", "failed": "#c62828", "skipped": "#ef6c00", "disabled": "#9e9e9e"}
_BOX_W, _BOX_H, _GAP_X, _GAP_Y = 210, 64, 60, 18


def volumes_svg(buckets: list[dict[str, Any]], tz: ZoneInfo) -> str:
    """Credits moved per day, stacked by transaction type."""
    chart = pygal.StackedBar(
        js=(),  # no tooltip script: the page loads nothing from another origin
        disable_xml_declaration=True,
        style=_CHART_STYLE,
        width=960,
        height=360,
        x_label_rotation=40,
        show_minor_x_labels=False,
        legend_at_bottom=True,
        title="Credits moved per day",
    )
    labels = [bucket["start"].astimezone(tz).strftime("%b %d") for bucket in buckets]
    chart.x_labels = labels
    chart.x_labels_major = labels[:: max(len(labels) // 10, 1)]
    for key in TYPE_KEYS.values():
        chart.add(key, [bucket[key]["amount"] for bucket in buckets])
    # pygal still embeds its config as an inline script for the tooltips: drop it (the page's
    # Content-Security-Policy would refuse it anyway).
    return _SCRIPT.sub("", chart.render(is_unicode=True))


def _depths(modules: dict[str, dict[str, Any]]) -> dict[str, int]:
    depths: dict[str, int] = {}

    def depth(name: str, trail: tuple[str, ...] = ()) -> int:
        if name not in depths:
            deps = [dep for dep in modules.get(name, {}).get("dependencies", []) if dep in modules and dep not in trail]
            depths[name] = 1 + max((depth(dep, (*trail, name)) for dep in deps), default=-1)
        return depths[name]

    for name in modules:
        depth(name)
    return depths


def module_graph_svg(status: dict[str, Any], health: dict[str, dict[str, Any]]) -> str:
    """Modules as boxes (status colour, event backlog and dead deliveries), dependency arrows."""
    modules: dict[str, dict[str, Any]] = status["modules"]
    depths = _depths(modules)
    columns: dict[int, list[str]] = {}
    for name in sorted(modules, key=lambda n: (depths[n], modules[n].get("load_position") or 0, n)):
        columns.setdefault(depths[name], []).append(name)
    where = {
        name: (20 + column * (_BOX_W + _GAP_X), 20 + row * (_BOX_H + _GAP_Y))
        for column, names in columns.items()
        for row, name in enumerate(names)
    }
    width = 40 + (max(columns, default=0) + 1) * (_BOX_W + _GAP_X) - _GAP_X
    height = 40 + max((len(names) for names in columns.values()), default=1) * (_BOX_H + _GAP_Y) - _GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="module-graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#607d8b"/></marker></defs>',
    ]
    for name, info in modules.items():
        x, y = where[name]
        for dep in info.get("dependencies", []):
            if dep in where:
                dx, dy = where[dep]
                parts.append(
                    f'<line x1="{dx + _BOX_W}" y1="{dy + _BOX_H / 2}" x2="{x}" y2="{y + _BOX_H / 2}" '
                    'stroke="#90a4ae" stroke-width="1.2" marker-end="url(#arrow)"/>'
                )
    for name, info in modules.items():
        x, y = where[name]
        state = str(info.get("status", "unknown"))
        events = health.get(name, {}).get("events") or {}
        backlog = f"backlog {events.get('backlog', 0)}, dead {events.get('dead', 0)}" if events else "no events"
        color = _STATUS_COLORS.get(state, "#607d8b")
        parts.append(
            f'<g class="module" data-module="{escape(name)}" data-status="{escape(state)}">'
            f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6" fill="white" stroke="{color}" '
            'stroke-width="2"/>'
            f'<text x="{x + 10}" y="{y + 20}" font-weight="bold">{escape(name)}</text>'
            f'<text x="{x + 10}" y="{y + 38}" fill="{color}">{escape(state)}</text>'
            f'<text x="{x + 10}" y="{y + 54}" fill="#455a64" class="backlog">{escape(backlog)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
