"""Exact small solvers on the K×K Gramian, in float64 numpy (K is small, P is not).

Everything here works on the Gramian ``G = J Jᵀ`` only, never on the K×P Jacobian, so the
cost is independent of the number of parameters. The building block is a Lawson–Hanson
non-negative least-squares solver (:func:`nnls`); on top of it:

* :func:`min_norm_weights` — the minimum-norm point of the convex hull of the rows
  (MGDA), through Lawson & Hanson's least-distance-programming reduction to NNLS;
* :func:`dual_cone_weights` — the projection of each row onto the dual cone of all rows
  (UPGrad), one NNLS per row; :class:`DualCone` projects any combination of the rows
  (CAGrad's degenerate case);
* :func:`factor` — a K×K matrix ``A`` with ``Aᵀ A = G`` (columns = the rows of J in an
  orthonormal basis of their span), so each problem is solved in K dimensions.

Conditioning. The dual-cone problems depend only on the directions of the rows, so they are
solved on the row-normalised Gramian ``Ĝ = D⁻¹ G D⁻¹`` (unit diagonal; rows scaled from
1e-15 to 1e15 are as easy as equal ones), in a canonical row order (so the arithmetic, and
the result, do not depend on the order of the tasks), and with the eigenvalues of ``Ĝ``
floored at the Gramian's own precision (:func:`eigenvalue_floor`). Where every eigenvalue is
above the floor this changes nothing: the solution is exact. Below it, the Gramian does not
determine the geometry (the rows are nearly weakly stationary: a positive combination of
them almost vanishes, and ``G`` computed in floating point cannot tell how nearly): the
floor then picks, among the solutions the Gramian cannot tell apart, the one with bounded
weights, which makes the result a stable, order-independent function of ``G`` instead of a
round-off-driven one (dual weights of 1e8 and O(1) changes under a row permutation).
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


def factor(g: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """A K×K matrix ``A`` with ``Aᵀ A = G``, the eigenvalues of ``G`` raised to ``floor``
    (negative round-off eigenvalues clipped to it)."""
    lam, v = np.linalg.eigh(g)
    lam = np.clip(lam, floor, None)
    return np.sqrt(lam)[:, None] * v.T


def eigenvalue_floor(dtype: torch.dtype | None = None) -> float:
    """The smallest eigenvalue of a row-normalised Gramian (unit diagonal) that its entries
    resolve: ``100 · eps`` of the dtype the Gramian was computed in (2.2e-14 in float64,
    1.2e-5 in float32). Round-off in ``G_ij`` is about ``eps · √P``.

    The level is a trade-off, measured on nearly weakly-stationary matrices (the last row a
    negative combination of others plus ε times a random vector): against UPGrad computed from
    J itself, the result is exact to 2e-6 at ε = 1e-5 and 4e-4 at ε = 1e-6 (as before the
    floor), while the change under a row permutation of a Gramian assembled in another order
    (K = 5..8, P = 3000: not bitwise the permuted matrix) stays below 4e-5 at every ε (it was
    O(1)); 1000 · eps halves that bound but costs exactness from ε = 1e-6 on."""
    eps = float(torch.finfo(dtype).eps) if dtype is not None and dtype.is_floating_point else float(
        np.finfo(np.float64).eps)
    return 100.0 * eps


def row_normalized(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Ĝ, n)``: the row norms ``n_i = √G_ii`` and ``Ĝ_ij = G_ij / (n_i n_j)`` (unit diagonal,
    entries clipped to [−1, 1]); rows and columns of zero rows are 0 in ``Ĝ``. Only exact zeros
    count as zero: a row 1e-30 times smaller than another keeps its direction."""
    d = np.diag(g)
    n = np.sqrt(np.where(np.isfinite(d) & (d > 0.0), d, 0.0))
    inv = np.where(n > 0.0, 1.0 / np.where(n > 0.0, n, 1.0), 0.0)
    gh = (g * inv[:, None]) * inv[None, :]  # divided in turn: n_i n_j may underflow
    gh = np.clip(0.5 * (gh + gh.T), -1.0, 1.0)
    np.fill_diagonal(gh, (n > 0.0).astype(np.float64))
    return gh, n


def canonical_order(g: np.ndarray) -> np.ndarray:
    """A row order that depends on the matrix only up to a simultaneous permutation of its rows
    and columns: rows sorted by their entries sorted in decreasing order (ties, e.g. duplicated
    rows, are interchangeable). Solving in this order makes the floating-point arithmetic, not
    only the mathematics, independent of the order of the tasks."""
    keys = -np.sort(-g, axis=1)
    return np.lexsort(keys.T[::-1])


class DualCone:
    """Projections onto the dual cone ``C = {x : ⟨ĝ_j, x⟩ ≥ 0 ∀j}`` of unit rows with Gramian
    ``gh`` (unit diagonal, no zero rows): for a combination ``Ĵᵀ b`` (``b ≥ 0``),
    :meth:`project` returns ``μ ≥ 0`` with ``π_C(Ĵᵀ b) = Ĵᵀ(b + μ)``, i.e.
    ``μ = argmin_{μ≥0} ‖Ĵᵀ(b + μ)‖²`` — an NNLS on the factor ``A`` (``AᵀA = Ĝ``).

    Solved in a canonical row order with the eigenvalues of ``Ĝ`` floored at ``floor`` (see the
    module docstring): exact when ``Ĝ`` is resolved above the floor.
    """

    def __init__(self, gh: np.ndarray, floor: float) -> None:
        k = gh.shape[0]
        self.perm = canonical_order(gh)
        gc = gh[np.ix_(self.perm, self.perm)]
        self.so = scipy_optimize("the dual-cone solver", required=False) if k >= SCIPY_NNLS_MIN_K else None
        self.a = factor(gc, floor)
        self.q = self.a.T @ self.a if self.so is None else None

    def project(self, b: np.ndarray) -> np.ndarray:
        bc = b[self.perm]
        if self.so is not None:
            mu_c = self.so.nnls(self.a, -(self.a @ bc))[0]
        else:
            assert self.q is not None
            mu_c = nnls_gram(self.q, -(self.q @ bc))
        mu = np.empty_like(mu_c)
        mu[self.perm] = mu_c
        return mu


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

    Lawson–Hanson least-distance programming, on the row-normalised Gramian: the min-norm
    point d* is parallel to the solution of ``min ‖x‖ s.t. ⟨g_i, x⟩ ≥ 1``, i.e.
    ``⟨ĝ_i, x⟩ ≥ h_i = 1/‖g_i‖`` for the unit rows ĝ_i; its dual, the NNLS problem
    ``min_{u ≥ 0} ‖[Â; h̃ᵀ] u − e_{K+1}‖`` (``ÂᵀÂ = Ĝ``, ``h̃ = h / max h``; Gram form
    ``Q = Ĝ + h̃h̃ᵀ``, ``c = h̃``), has ``w ∝ u ∘ h̃``. Each constraint is thus enforced relative
    to its own row: rows scaled from 1e-15 to 1e15 keep d* non-conflicting with every one of
    them (on ``G`` divided by its mean diagonal, the small rows' entries fall below round-off).
    An exact zero row puts 0 in the hull: the weights are then shared by the zero rows
    (d* = 0 exactly). A zero Gramian gives equal weights.
    """
    k = g.shape[0]
    if k == 1:
        return np.ones(1)
    gh, n = row_normalized(g)
    zero = n == 0.0
    if zero.all():
        return np.full(k, 1.0 / k)
    if zero.any():
        return zero / float(zero.sum())
    if k == 2:
        return _min_norm_two(n[0], n[1], float(gh[0, 1]))
    h = 1.0 / n
    h = h / float(h.max())
    so = scipy_optimize("the min-norm solver", required=False) if k >= SCIPY_NNLS_MIN_K else None
    if so is not None:
        a = np.vstack([factor(gh), h[None, :]])
        rhs = np.zeros(k + 1)
        rhs[k] = 1.0
        u = so.nnls(a, rhs)[0]
    else:
        u = nnls_gram(gh + np.outer(h, h), h, support=support)
    w = u * h
    total = float(w.sum())
    if not np.isfinite(total) or total <= 0.0:
        return np.full(k, 1.0 / k)
    return w / total


def _min_norm_two(a: float, b: float, c: float) -> np.ndarray:
    """The min-norm point of the segment between two rows of norms ``a``, ``b`` and cosine
    ``c``: ``t ∝ b (b − a c)``, ``1 − t ∝ a (a − b c)`` over ``(a − b)² + 2ab(1 − c)``, each
    written without cancellation (norms 1e30 apart keep their 1e-30 weights), clipped at 0."""
    w = np.array([max(b * (b - a * c), 0.0), max(a * (a - b * c), 0.0)])
    total = float(w.sum())
    return w / total if total > 0.0 and np.isfinite(total) else np.full(2, 0.5)


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


def dual_cone_weights(g: np.ndarray, *, floor: float | None = None) -> np.ndarray:
    """(K, K) matrix whose row i holds the weights ``v_i`` of the projection of row ``i`` of
    J onto the dual cone ``{x : J x ≥ 0}``: ``v_i = argmin_{v ≥ e_i} vᵀ G v``.

    The cone depends on the directions of the rows only, so each row is projected as a unit
    vector, ``π(g_i) = n_i π(ĝ_i)`` with ``π(ĝ_i) = Ĵᵀ(e_i + μ)`` (:class:`DualCone`: NNLS on
    the row-normalised Gramian, canonical row order, eigenvalues floored at ``floor``, by
    default :func:`eigenvalue_floor` of float64), and ``v_ij = n_i (δ_ij + μ_j) / n_j``.
    Zero rows constrain nothing and keep ``v_i = e_i``; a row that conflicts with no other is
    already in the cone and needs no solve. The NNLS runs in
    :func:`nnls_gram`, or — for K ≥ ``SCIPY_NNLS_MIN_K`` when SciPy is installed — in
    ``scipy.optimize.nnls`` (the same Lawson–Hanson method, compiled: about 10× faster from
    K = 4 on).
    """
    k = g.shape[0]
    out = np.eye(k)
    gh, n = row_normalized(g)
    idx = np.flatnonzero(n > 0.0)
    if idx.size == 0:
        return out
    sub = gh[np.ix_(idx, idx)]
    if (sub >= 0.0).all():
        return out
    if idx.size == 2:
        # two unit rows of cosine c < 0: π(ĝ_0) = ĝ_0 − c ĝ_1 (the half-space of ĝ_1; it keeps
        # ⟨ĝ_0, ·⟩ = 1 − c² ≥ 0), and symmetrically
        i, j = idx
        c = float(sub[0, 1])
        out[i, j] = -c * n[i] / n[j]
        out[j, i] = -c * n[j] / n[i]
        return out
    cone = DualCone(sub, eigenvalue_floor() if floor is None else floor)
    e = np.zeros(idx.size)
    for a, i in enumerate(idx):
        if (sub[a] >= 0.0).all():
            continue
        e[a] = 1.0
        mu = cone.project(e)
        e[a] = 0.0
        out[i, idx] += n[i] * mu / n[idx]
    return out
