"""Plain-text tables and number formatting shared by the analysis and distillation reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def fnum(value: Any, digits: int = 4) -> str:
    """A float for a table: ``n/a`` when missing or not finite; ``digits`` decimals, or
    three significant digits for a value too small for them (never ``0.0000`` for 1e-5).

    >>> fnum(0.123456), fnum(None), fnum(float("nan")), fnum(-2.5, 2), fnum(1.234e-5), fnum(0.0)
    ('0.1235', 'n/a', 'n/a', '-2.50', '1.23e-05', '0.0000')
    """
    if value is None or isinstance(value, bool):
        return "n/a"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(f):
        return "n/a"
    if f != 0 and abs(f) < 10.0 ** -(digits - 1):  # 0.0003 -> 0.0003, 1.2e-5 -> 1.2e-05
        return f"{f:.3g}"
    return f"{f:.{digits}f}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces.

    >>> print(text_table(["a", "bb"], [["x", 1], ["yyy", 22]]))
    a    bb
    x    1
    yyy  22
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table.

    >>> print(markdown_table(["a", "b"], [[1, 2]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(str(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
