"""Server-side source highlighting with Pygments (one renderer for the REST
route and the live `source_changed` event)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

CSS_CLASS = "highlight"
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
MAX_SOURCE_BYTES = 1_000_000


def _lexer(language: str | None, filename: str | None):
    if language:
        try:
            return get_lexer_by_name(language)
        except ClassNotFound:
            pass
    if filename:
        try:
            return get_lexer_for_filename(filename)
        except ClassNotFound:
            pass
    return TextLexer()


def render(code: str, language: str | None = None, filename: str | None = None) -> tuple[str, str]:
    """Return (language alias, HTML) for `code`; the HTML uses CSS classes and a line-number table."""
    lexer = _lexer(language, filename)
    formatter = HtmlFormatter(linenos="table", cssclass=CSS_CLASS, wrapcode=True)
    alias = lexer.aliases[0] if lexer.aliases else (language or "text")
    return alias, highlight(code, lexer, formatter)


def read_source(path: Path) -> tuple[str, bool]:
    """Read a source file as text (at most MAX_SOURCE_BYTES); returns (text, truncated)."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_SOURCE_BYTES + 1)
    truncated = len(data) > MAX_SOURCE_BYTES
    return data[:MAX_SOURCE_BYTES].decode("utf-8", "replace"), truncated


@lru_cache(maxsize=4)
def stylesheet(theme: str = "auto") -> str:
    """Pygments CSS: `light`, `dark`, or `auto` (light, with dark under prefers-color-scheme
    and under an explicit `[data-theme="dark"]` ancestor)."""
    light = HtmlFormatter(style=LIGHT_STYLE, cssclass=CSS_CLASS).get_style_defs(f".{CSS_CLASS}")
    dark_fmt = HtmlFormatter(style=DARK_STYLE, cssclass=CSS_CLASS)
    if theme == "light":
        return light + "\n"
    if theme == "dark":
        return dark_fmt.get_style_defs(f".{CSS_CLASS}") + "\n"
    dark_media = _scoped(dark_fmt.get_style_defs(f':root:not([data-theme="light"]) .{CSS_CLASS}'),
                         ':root:not([data-theme="light"])')
    dark_forced = _scoped(dark_fmt.get_style_defs(f'[data-theme="dark"] .{CSS_CLASS}'), '[data-theme="dark"]')
    indented = "\n".join("  " + line for line in dark_media.splitlines())
    return (f"/* Pygments: {LIGHT_STYLE} (light) and {DARK_STYLE} (dark) */\n{light}\n"
            f"@media (prefers-color-scheme: dark) {{\n{indented}\n}}\n{dark_forced}\n")


def _scoped(defs: str, scope: str) -> str:
    """Pygments emits a few rules (`pre`, `td.linenos`, `span.linenos`) without the class prefix;
    scope them too, so the dark rules never leak into the light theme."""
    out = []
    for line in defs.splitlines():
        if line.strip() and not line.startswith(scope):
            line = f"{scope} {line}"
        out.append(line)
    return "\n".join(out)
