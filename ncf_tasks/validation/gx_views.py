"""GX Data Docs views that render data safely and keep their compiled Jinja templates for the process's life.

Safe: GX judges the lake's values as they are (an id may be ``<script>…</script>`` or 3 MB long), and its
stock views write a data value that reaches the page as a plain string or list item unescaped (its ``.j2``
templates are not autoescaped; only string-template parameters are escaped). These views escape and bound
(``errors.clip``) every such value where the page is rendered; markup GX builds itself is untouched, so
pages of ordinary data are byte for byte GX's own (tested against the stock views).

Fast:
GX builds a new Jinja environment for every page it renders, so each validation compiled the same
~50 templates again: 0.3 s of a day's 0.8 s validation, paid once per day by a backfill of hundreds of
days. These views are GX's own, with one shared in-memory bytecode cache; the pages are what GX writes
(tested against its stock views). Imported by validation and by GX (the site's ``module_name``) when a
site is built, never at DAG parse time.
"""

from __future__ import annotations

import html
from typing import Any

import jinja2
from great_expectations.render.components import RenderedComponentContent
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

from ncf_tasks.errors import clip


def _shown(value: Any) -> str:
    """A data value as a page shows it: its text bounded, then HTML-escaped."""
    return html.escape(clip(str(value)), quote=False)


def _block(value: Any) -> bool:
    return isinstance(value, RenderedComponentContent) or (isinstance(value, dict) and "content_block_type" in value)


class _MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates by Jinja's key (template name and source checksum): a changed template recompiles."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


_CACHE = _MemoryBytecodeCache()


class _Cached:
    """Mixed into a GX view: its Jinja environment reads and writes the shared cache, and data values reach the
    page escaped and bounded."""

    # named parameters: GX passes a view only the runtime settings its signature names (the styles folder)
    def __init__(self, custom_styles_directory=None, custom_views_directory=None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.env.bytecode_cache = _CACHE
        # the templates call these through filters bound to the stock methods: bind ours
        self.env.filters["render_content_block"] = self.render_content_block
        self.env.filters["render_string_template"] = self.render_string_template

    @jinja2.pass_context
    def render_content_block(self, jinja_context, content_block, index=None, content_block_id=None,
                             render_to_markdown=False):  # fmt: skip
        """A plain string or a list's plain item is a value (a table cell, an unexpected value): shown escaped
        and bounded. Blocks are GX's own markup, rendered by its templates (which come back here)."""
        if isinstance(content_block, str):
            return _shown(content_block)
        if isinstance(content_block, list):
            content_block = [el if _block(el) else _shown(el) for el in content_block]
        return super().render_content_block(jinja_context, content_block, index, content_block_id, render_to_markdown)

    def render_string_template(self, template):
        """String templates escape their parameters already (GX 1.24): bound them too."""
        if isinstance(template, dict) and isinstance(template.get("params"), dict):
            template = {**template, "params": {k: clip(v) if isinstance(v, str) else v
                                               for k, v in template["params"].items()}}  # fmt: skip
        return super().render_string_template(template)


class CachedPageView(_Cached, DefaultJinjaPageView):
    pass


class CachedIndexPageView(_Cached, DefaultJinjaIndexPageView):
    pass


def _view(cls: type) -> dict:
    return {"module_name": __name__, "class_name": cls.__name__}


def site(directory: str) -> dict:
    """GX's default local Data Docs site written to ``directory``, with these views for every page."""
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": True,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": directory},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": _view(CachedIndexPageView)},
        "site_section_builders": {
            name: {"view": _view(CachedPageView)} for name in ("expectations", "validations", "profiling")
        },
    }
