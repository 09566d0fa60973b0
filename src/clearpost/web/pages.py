"""Server-rendered pages: sign-in, consent, errors. Every value is HTML-escaped."""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

_DIR = Path(__file__).parent / "templates"
_CACHE: dict[str, Template] = {}


def render(name: str, **values: str) -> str:
    """Fill ``templates/<name>.html``. Values are escaped; keys ending in ``_html`` are not
    (they must be built from escaped parts)."""
    if name not in _CACHE:
        _CACHE[name] = Template((_DIR / f"{name}.html").read_text())
    safe = {k: v if k.endswith("_html") else html.escape(v, quote=True) for k, v in values.items()}
    body = _CACHE[name].substitute(safe)
    return _CACHE.setdefault("layout", Template((_DIR / "layout.html").read_text())).substitute(
        title=safe.get("title", "Clearpost"), body_html=body
    )


def esc(value: str) -> str:
    return html.escape(value, quote=True)
