"""One shared way for configurable components to show their hyperparameters."""

from __future__ import annotations

import inspect
from typing import Any


class HasParams:
    """``hparams()`` reads the constructor's named parameters back from the attributes of the
    same names (scikit-learn style); ``repr`` shows the full constructor, ``str`` the class
    name (short, and the pytest id)."""

    def hparams(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in inspect.signature(type(self).__init__).parameters.values():
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if hasattr(self, p.name):
                out[p.name] = getattr(self, p.name)
        return out

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({params})"

    def __str__(self) -> str:
        return type(self).__name__
