"""Counted nouns for messages: "1 task", "2 tasks", "1 model" — never "1 tasks" or "task(s)".

>>> plural(1, "task"), plural(3, "task"), plural(1_500, "sample"), plural(2, "class", "classes")
('1 task', '3 tasks', '1,500 samples', '2 classes')
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int | float, word: str, many: str | None = None) -> str:
    """``count`` and ``word``, in the plural (``many``, default ``word + "s"``) unless the
    count is exactly one; integers get thousands separators."""
    is_one = count == 1
    shown = f"{count:,}" if isinstance(count, int) and not isinstance(count, bool) else f"{count:g}"
    return f"{shown} {word if is_one else (many or word + 's')}"
