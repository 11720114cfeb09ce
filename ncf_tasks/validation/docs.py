"""GX Data Docs of a validated day, uploaded to ``reports/validation/dt=D/`` (GX 1.x has no S3 store)."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from ncf_tasks import layout
from ncf_tasks.storage import Storage

_STATIC_REF = re.compile(r'((?:href|src)=")((?:\.\.?/)*)static/([^"]+)"')


def upload_data_docs(storage: Storage, site: Path, prefix: str) -> int:
    """Upload a GX Data Docs site: its pages under ``prefix``, the static assets they reference once,
    shared by every day (``layout.validation_static``), the rest of GX's ``static/`` (4 MB of fonts and
    animated GIFs per day, referenced by no page: styles and scripts come from CDNs) not at all.
    Returns the number of objects written."""
    shared = layout.validation_static()
    present = set(storage.list_keys(shared))
    written = 0
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        below = prefix.removeprefix(shared.rsplit("/", 2)[0] + "/")  # e.g. 'dt=D/', 'catalog/dt=D/'
        up = "../" * (below.count("/") + rel.count("/"))  # from the page to reports/validation/
        text = page.read_text()
        for asset in {m.group(3) for m in _STATIC_REF.finditer(text)}:
            key = shared + asset
            if key not in present and (site / "static" / asset).is_file():
                storage.put_bytes(
                    key,
                    (site / "static" / asset).read_bytes(),
                    mimetypes.guess_type(asset)[0] or "application/octet-stream",
                )
                present.add(key)
                written += 1
        text = _STATIC_REF.sub(lambda m: f'{m.group(1)}{up}{shared.rsplit("/", 2)[-2]}/{m.group(3)}"', text)
        storage.put_bytes(prefix + rel, text.encode(), "text/html")
        written += 1
    return written
