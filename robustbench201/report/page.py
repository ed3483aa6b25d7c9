"""The report as one self-contained HTML file: the data as JSON, the packed columns as text, and the page's own
stylesheet and script (``assets/``, hand-written, no library) inlined.

The page loads nothing: a Content-Security-Policy forbids every fetch, and the script inflates the packed columns
with the browser's ``DecompressionStream`` (Chromium 80+, Firefox 113+, Safari 16.4+).
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Any

__all__ = ["render_page", "CSP", "SCRIPTS"]

#: The page's script, in order, run as one function in strict mode: helpers and the data (``base.js``), the figures
#: (``charts.js``), the dataset's views (``dataset.js``), the build's views (``build.js``), the start (``main.js``).
SCRIPTS: tuple[str, ...] = ("base.js", "charts.js", "dataset.js", "build.js", "main.js")

#: Nothing may be loaded from anywhere: inline script and style only, images from data: URLs (none are used).
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"


def _asset(name: str) -> str:
    return (files("robustbench201.report") / "assets" / name).read_text(encoding="utf-8")


def script() -> str:
    """The page's script: :data:`SCRIPTS` inside one strict-mode function (nothing leaks into the page's globals)."""
    body = "\n".join(_asset(name) for name in SCRIPTS)
    return (
        "/* rb201 report: reads the JSON data and the packed columns in this page (robustbench201/report/encode.py)"
        " and draws every table and figure as HTML and inline SVG. Nothing is fetched. */\n"
        f"(() => {{\n'use strict';\n{body}}})();\n"
    )


def _json(data: Any) -> str:
    """JSON safe inside a <script> element (no ``</`` and no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c")


def render_page(title: str, data: dict[str, Any], blobs: dict[str, tuple[str, int]], refresh_s: float | None) -> str:
    """The HTML text. ``blobs``: name -> (base-85 text, byte count) of packed columns; ``refresh_s``: reload the
    page from disk every so many seconds (``rb201 report --watch``)."""
    refresh = f'<meta http-equiv="refresh" content="{max(int(refresh_s), 1)}">\n' if refresh_s else ""
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f'<meta name="generator" content="{html.escape(str(data.get("generator", "rb201")))}">\n',
        refresh,
        f"<title>{html.escape(title)}</title>\n<style>\n{_asset('report.css')}</style>\n</head>\n<body>\n",
        '<a class="skip" href="#main">Skip to the report</a>\n',
        f'<header id="top"><h1>{html.escape(title)}</h1><nav id="tabs" aria-label="Report views"></nav></header>\n',
        '<main id="main" tabindex="-1"><p id="status" role="status">Loading the report…</p>',
        "<noscript><p>This report draws its tables and figures with JavaScript; please enable it.</p></noscript>",
        "</main>\n",
        '<footer id="footer"></footer>\n',
        f'<script type="application/json" id="rb201-data">{_json(data)}</script>\n',
    ]
    for name, (text, size) in blobs.items():
        parts.append(f'<script type="text/plain" id="rb201-blob-{name}" data-bytes="{size}">{text}</script>\n')
    parts.append(f"<script>\n{script()}</script>\n</body>\n</html>\n")
    return "".join(parts)
