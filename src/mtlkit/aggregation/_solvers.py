"""Exact small solvers on the K×K Gramian, in float64 numpy (K is small, P is not).

Everything here works on the Gramian ``G = J Jᵀ`` only, never on the K×P Jacobian, so the
cost is independent of the number of parameters. The building block is a Lawson–Hanson
non-negative least-squares solver (:func:`nnls`); on top of it:

* :func:`min_norm_weights` — the minimum-norm point of the convex hull of the rows
  (MGDA), through Lawson & Hanson's least-distance-programming reduction to NNLS;
* :func:`dual_cone_weights` — the projection of each row onto the dual cone of all rows
  (UPGrad), one NNLS per row;
* :func:`factor` — a K×K matrix ``A`` with ``Aᵀ A = G`` (columns = the rows of J in an
  orthonormal basis of their span), so each problem is solved in K dimensions.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def to_numpy(gramian: Tensor) -> np.ndarray:
    """The Gramian as a symmetric float64 numpy array (one device->host copy of K×K)."""
    g = gramian.detach().to(device="cpu", dtype=torch.float64).numpy()
    return 0.5 * (g + g.T)


def normalized(g: np.ndarray) -> tuple[np.ndarray, float]:
    """``(G / s, s)`` with ``s`` the mean diagonal entry; ``s == 0`` for a zero Gramian.

    Every solver here is invariant to this scaling; it keeps 1e-12 and 1e12 scales alike.
    """
    k = g.shape[0]
    s = float(np.trace(g)) / max(k, 1)
    if not np.isfinite(s) or s <= 0.0:
        return np.zeros_like(g), 0.0
    return g / s, s


def factor(g: np.ndarray) -> np.ndarray:
    """A K×K matrix ``A`` with ``Aᵀ A = G`` (negative round-off eigenvalues clipped)."""
    lam, v = np.linalg.eigh(g)
    lam = np.clip(lam, 0.0, None)
    return np.sqrt(lam)[:, None] * v.T


def nnls(a: np.ndarray, b: np.ndarray, *, max_iter: int | None = None) -> np.ndarray:
    """argmin_{x ≥ 0} ‖A x − b‖ (see :func:`nnls_gram`)."""
    return nnls_gram(a.T @ a, a.T @ b, max_iter=max_iter)


def nnls_gram(q: np.ndarray, c: np.ndarray, *, max_iter: int | None = None,
              support: np.ndarray | None = None) -> np.ndarray:
    """argmin_{x ≥ 0} ½ xᵀ Q x − cᵀ x for a PSD ``Q`` (NNLS in Gram form, ``Q = AᵀA``,
    ``c = Aᵀb``), by the Lawson–Hanson active-set method: exact and finite.

    Lawson & Hanson, "Solving Least Squares Problems", 1974, ch. 23. Working on the n×n Gram
    matrix keeps every sub-solve an n_P×n_P linear system. An entering variable that
    round-off keeps at zero is set aside until the next successful step (no cycling).
    ``support`` (a guess of the final positive set, e.g. from a neighbouring problem) is
    tried first: when the unconstrained solution on it is positive, the method starts from
    there and usually only has to confirm optimality.
    """
    n = q.shape[0]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    blocked = np.zeros(n, dtype=bool)
    if support is not None and support.any():
        s0 = _restricted_solve(q, c, support)
        if (s0[support] > 0.0).all():
            x, passive = s0, support.copy()
    scale = max(float(np.abs(q).max(initial=0.0)), float(np.abs(c).max(initial=0.0)), 1e-300)
    tol = 1e3 * np.finfo(np.float64).eps * scale * n
    budget = max_iter if max_iter is not None else 3 * n + 10
    for _ in range(budget):
        w = c - q @ x
        candidates = ~passive & ~blocked & (w > tol)
        if not candidates.any():
            break
        j = int(np.argmax(np.where(candidates, w, -np.inf)))
        passive[j] = True
        s = _restricted_solve(q, c, passive)
        if s[j] <= 0.0:
            passive[j] = False
            blocked[j] = True
            continue
        for _inner in range(n):
            neg = passive & (s <= 0.0)
            if not neg.any():
                break
            alpha = float(np.min(x[neg] / (x[neg] - s[neg])))
            x = x + alpha * (s - x)
            passive &= x > tol * 1e-3
            x[~passive] = 0.0
            s = _restricted_solve(q, c, passive)
        x = np.where(passive, s, 0.0)
        blocked[:] = False
    return x


def _restricted_solve(q: np.ndarray, c: np.ndarray, passive: np.ndarray) -> np.ndarray:
    """Solve ``Q_PP s_P = c_P`` (least squares if singular); zero outside ``P``."""
    s = np.zeros(q.shape[0])
    idx = np.flatnonzero(passive)
    if idx.size:
        qp, cp = q[idx[:, None], idx], c[idx]
        try:
            sol = np.linalg.solve(qp, cp)
            r = qp @ sol - cp
            if not float(r @ r) <= 1e-16 * (1.0 + float(cp @ cp)):
                raise np.linalg.LinAlgError
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(qp, cp, rcond=None)[0]
        s[idx] = sol
    return s


def min_norm_weights(g: np.ndarray, *, support: np.ndarray | None = None) -> np.ndarray:
    """Weights ``w`` on the simplex minimising ``wᵀ G w`` (the min-norm point of the hull).

    Lawson–Hanson least-distance programming: with ``Aᵀ A = G``, the NNLS problem
    ``min_{u ≥ 0} ‖[A; 1ᵀ] u − e_{K+1}‖`` (Gram form: ``Q = G + 11ᵀ``, ``c = 1``) has
    ``u ∝ w``. A zero Gramian gives equal weights.
    """
    k = g.shape[0]
    if k == 1:
        return np.ones(1)
    gn, s = normalized(g)
    if s == 0.0:
        return np.full(k, 1.0 / k)
    return min_norm_weights_normalized(gn, support=support)


def min_norm_weights_normalized(gn: np.ndarray, *, support: np.ndarray | None = None) -> np.ndarray:
    """:func:`min_norm_weights` for a Gramian already scaled to O(1) entries.

    For K ≥ ``SCIPY_NNLS_MIN_K`` with SciPy installed the NNLS goes to ``scipy.optimize.nnls``
    on ``[A; 1ᵀ]`` (``AᵀA = G``) and ``e_{K+1}`` (the same Lawson–Hanson method, compiled);
    ``support`` is then not used.
    """
    k = gn.shape[0]
    so = scipy_optimize("the min-norm solver", required=False) if k >= SCIPY_NNLS_MIN_K else None
    if so is not None:
        a = np.vstack([factor(gn), np.ones((1, k))])
        rhs = np.zeros(k + 1)
        rhs[k] = 1.0
        u = so.nnls(a, rhs)[0]
    else:
        u = nnls_gram(gn + 1.0, np.ones(k), support=support)
    total = float(u.sum())
    if not np.isfinite(total) or total <= 0.0:
        return np.full(k, 1.0 / k)
    return u / total


#: from this K on, the NNLS problems (UPGrad's K projections, the min-norm point of MGDA,
#: CAGrad and Nash-MTL's fallback) go to SciPy's compiled solver when it is installed: about
#: 10× faster than the numpy one from K = 4 on (``benchmarks/step_time.py``); at K = 2 the
#: numpy solver is as fast and is kept
SCIPY_NNLS_MIN_K = 3


def scipy_optimize(purpose: str, *, required: bool = True):
    """The one guarded import of the optional SciPy dependency (``mtlkit[solvers]``).

    Returns ``scipy.optimize``, or ``None`` when SciPy is missing and ``required`` is False.
    """
    try:
        import scipy.optimize as so
    except ImportError as exc:  # pragma: no cover - depends on the environment
        if not required:
            return None
        raise ImportError(f"{purpose} needs SciPy: pip install 'mtlkit[solvers]'.") from exc
    return so


def dual_cone_weights(g: np.ndarray) -> np.ndarray:
    """(K, K) matrix whose row i holds the weights ``v_i`` of the projection of row ``i`` of
    J onto the dual cone ``{x : J x ≥ 0}``: ``v_i = argmin_{v ≥ e_i} vᵀ G v``.

    With ``v = e_i + μ`` this is the NNLS (Gram form) ``min_{μ≥0} ½ μᵀGμ + μᵀG e_i``, i.e.
    ``min_{μ≥0} ‖A μ + A e_i‖`` with ``AᵀA = G``.
    Exact either way: the NNLS problems are solved by :func:`nnls_gram`, or — for K ≥
    ``SCIPY_NNLS_MIN_K`` when SciPy is installed — by ``scipy.optimize.nnls`` on the factor
    ``A`` (the same Lawson–Hanson method, compiled: about 10× faster from K = 4 on).
    """
    k = g.shape[0]
    gn, s = normalized(g)
    out = np.eye(k)
    if s == 0.0:
        return out
    so = scipy_optimize("UPGrad", required=False) if k >= SCIPY_NNLS_MIN_K else None
    a = factor(gn) if so is not None else None
    for i in range(k):
        # rows already in the cone (no conflict with any other row) need no solve
        if (gn[i] >= 0).all():
            continue
        if so is not None and a is not None:
            out[i] += so.nnls(a, -a[:, i])[0]
        else:
            out[i] += nnls_gram(gn, -gn[:, i])
    return out
