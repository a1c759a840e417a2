"""Render an executed notebook as one self-contained HTML file that loads nothing remote."""

from __future__ import annotations

import html as html_lib
import logging
import re
from html.parser import HTMLParser
from typing import Any

# Attributes through which a browser fetches something on page load (not <a href>: a link
# is only followed when clicked).
_LOADING_ATTRS = {"src", "href", "data", "poster", "srcset", "background"}
_EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_TAG = re.compile(r"<(script|link|img|iframe|source|video|audio|embed|object)\b([^>]*)>", re.I)
_ATTR = re.compile(r"""([\w:-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)""")
_SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL)
# Code that fetches a module or file at run time, e.g. nbconvert's mermaid loader.
_SCRIPT_FETCH = re.compile(
    r"""(?:import\s*\(|from|fetch\s*\()\s*["'`]((?:https?:)?//[^"'`]*)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+(url\()?\s*["']?(https?:)?//[^;]*;""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*["']?(https?:)?//[^)]*\)""", re.IGNORECASE)
# CSS is only rewritten where a browser reads it, never in the text of a cell.
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
_STYLE_ATTR = re.compile(r"""(\sstyle\s*=\s*)("[^"]*"|'[^']*')""", re.IGNORECASE)


def notebook_to_html(notebook: Any) -> str:
    """HTML of a notebook node: images embedded, no MathJax/require.js/mermaid from a CDN.

    Args:
        notebook: an ``nbformat.NotebookNode`` (executed or partly executed).

    Returns:
        The page, passed through :func:`make_self_contained`.
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        embed_images=True,
        # empty URLs make nbconvert leave these loaders out (or emit an empty src, stripped)
        mathjax_url="",
        require_js_url="",
        mermaid_js_url="",
        mermaid_layout_elk_js_url="",
        jquery_url="",
        jupyter_widgets_base_url="",
        widget_renderer_url="",
    )
    exporter.log.addFilter(_drop_missing_alt_warning)
    try:
        body, _ = exporter.from_notebook_node(notebook)
    finally:
        exporter.log.removeFilter(_drop_missing_alt_warning)
    return make_self_contained(body)


def _drop_missing_alt_warning(record: logging.LogRecord) -> bool:
    """nbconvert warns for every plot (outputs carry no alt text) and fills one in itself."""
    return not str(record.msg).startswith("Alternative text is missing")


def make_self_contained(page: str) -> str:
    """Remove every remote resource load that nbconvert (or a cell's HTML output) left in.

    Scripts with a remote or empty ``src`` and scripts that import remote modules are
    dropped, remote stylesheets and CSS ``@import``/``url()`` are dropped, and remote
    images, frames and media become plain links, so the page opens offline without waiting.
    """
    page = _SCRIPT_BLOCK.sub(_script_replacement, page)
    page = _TAG.sub(_tag_replacement, page)
    page = _STYLE_BLOCK.sub(lambda m: m.group(1) + _local_css(m.group(2)) + m.group(3), page)
    return _STYLE_ATTR.sub(lambda m: m.group(1) + _local_css(m.group(2)), page)


def _local_css(css: str) -> str:
    return _CSS_URL.sub("none", _CSS_IMPORT.sub("", css))


def external_resources(page: str) -> list[str]:
    """Remote URLs the page would fetch when opened (empty for a self-contained page)."""
    finder = _ResourceFinder()
    finder.feed(page)
    finder.close()
    return finder.found


def _attributes(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2).strip("\"'") for m in _ATTR.finditer(text)}


def _is_remote(attrs: dict[str, str]) -> str | None:
    for name in _LOADING_ATTRS & attrs.keys():
        value = attrs[name]
        if name == "srcset":
            value = value.split(",")[0]
        if _EXTERNAL.match(value):
            return html_lib.unescape(value)
    return None


def _script_replacement(match: re.Match[str]) -> str:
    block = match.group(0)
    opening = block[: block.index(">") + 1]
    attrs = _attributes(opening[len("<script"):-1])
    if "src" in attrs and (not attrs["src"].strip() or _EXTERNAL.match(attrs["src"])):
        return ""
    if _SCRIPT_FETCH.search(block[len(opening):]):
        return ""
    return block


def _tag_replacement(match: re.Match[str]) -> str:
    tag, attrs = match.group(1).lower(), _attributes(match.group(2))
    url = _is_remote(attrs)
    if url is None:
        return match.group(0)
    if tag in ("link", "script", "source"):
        return ""
    safe = html_lib.escape(url, quote=True)
    label = html_lib.escape(attrs.get("alt") or f"remote {tag}")
    # the closing tag of iframe/video/... stays; harmless empty element
    return f'<a class="recft-remote" href="{safe}">[{label}: {safe}]</a>'


class _ResourceFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script_depth = 0
        self._style_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): value or "" for name, value in attrs}
        if tag == "script":
            self._script_depth += 1
        if tag == "style":
            self._style_depth += 1
        self._check_css(values.get("style", ""))
        if tag == "a":
            return
        url = _is_remote({k: v for k, v in values.items() if k in _LOADING_ATTRS})
        if url is not None:
            self.found.append(f"<{tag}> {url}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_depth = max(0, self._script_depth - 1)
        if tag == "style":
            self._style_depth = max(0, self._style_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._script_depth:
            self.found += [f"<script> {m.group(1)}" for m in _SCRIPT_FETCH.finditer(data)]
        if self._style_depth:
            self._check_css(data)

    def _check_css(self, css: str) -> None:
        self.found += [f"<style> {m.group(0)}" for m in _CSS_IMPORT.finditer(css)]
        self.found += [f"<style> {m.group(0)}" for m in _CSS_URL.finditer(css)]
