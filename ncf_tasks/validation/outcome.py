"""One rule's verdict on a day (a GX expectation's or a polars rule's), and values bounded for reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ncf_tasks.errors import clip


@dataclass
class Outcome:
    rule: str
    expectation: str
    column: str | None
    success: bool
    soft: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list = field(default_factory=list)
    expected: str = ""
    error: str | None = None

    def describe(self) -> str:
        what = f"{self.expectation}({self.column})" if self.column else self.expectation
        parts = [f"rule {self.rule}: {what} failed" + (f" (expected {self.expected})" if self.expected else "")]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} bad row(s)")
        if self.examples:
            parts.append(f"example rows {self.examples}")
        return "; ".join(parts)


def jsonable(v: Any) -> Any:
    if isinstance(v, str):
        return clip(v)
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)  # 'nan', 'inf': JSON has no literal for them
    return str(v)


def bounded(value: Any) -> Any:
    """A JSON-able value (GX's validation result) with every string cut by ``clip``: GX judges the lake's values
    whole, so its result can quote a 200 MB id; what is kept in quarantine and logged must stay small."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {bounded(k) if isinstance(k, str) else k: bounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [bounded(v) for v in value]
    return value
