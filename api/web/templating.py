"""The Jinja2 templates of the pages (autoescaped), with the Norwegian formats as filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from api.web import format as fmt

__all__ = ["render", "render_text"]

_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters |= {"number": fmt.number, "date_time": fmt.date_time, "age": fmt.age}
_ENV.globals |= {"band_of": fmt.band_of, "trend_word": fmt.trend_word, "PARAMETERS": fmt.PARAMETERS}


def render_text(template: str, **context: Any) -> str:
    """The rendered template."""
    return _ENV.get_template(template).render(**context)


def render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: HTML, never cached (it shows personal data)."""
    return HTMLResponse(
        render_text(template, **context),
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            "Referrer-Policy": "same-origin",
        },
    )
