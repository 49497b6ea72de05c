"""Hand-worked values from each paper's definition, on small 2-task examples.

Running example: two unit vectors at 120°, g1 = (1, 0), g2 = (−1/2, √3/2):
‖g1‖ = ‖g2‖ = 1, ⟨g1, g2⟩ = cos 120° = −1/2, g1 + g2 = (1/2, √3/2), G = [[1, −½], [−½, 1]].
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from mtlkit.aggregation import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    GradDrop,
    GradVac,
    Mean,
    NashMTL,
    PCGrad,
    UPGrad,
)

R3 = math.sqrt(3.0)
G1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
G2 = torch.tensor([-0.5, R3 / 2], dtype=torch.float64)
J120 = torch.stack([G1, G2])
SUM = G1 + G2  # (1/2, √3/2)


def close(a, b, tol=1e-10):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), rtol=0, atol=tol)


def test_mean_120():
    close(Mean()(J120), [0.25, R3 / 4])


def test_mgda_120():
    # min over w ∈ [0,1] of ‖w g1 + (1−w) g2‖²; by symmetry (‖g1‖ = ‖g2‖) w = 1/2:
    # d = (g1 + g2)/2 = (1/4, √3/4), of norm 1/2.
    close(MGDA()(J120), [0.25, R3 / 4])
    close(MGDA().weights_of(J120), [0.5, 0.5])


def test_mgda_unequal_norms():
    # g1 = (2, 0), g2 = (0, 1): min (2w)² + (1−w)² → 8w − 2(1−w) = 0 → w = 1/5;
    # d = (2/5, 4/5), ⟨d, g1⟩ = ⟨d, g2⟩ = 4/5 = ‖d‖² (the min-norm point's optimality).
    j = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    close(MGDA()(j), [0.4, 0.8])
    # l2 normalisation: ĝ = (1,0), (0,1) → w = (1/2, 1/2) on ĝ; d = (1/2, 1/2)
    close(MGDA(normalization="l2")(j), [0.5, 0.5])
    close(MGDA(normalization="l2").weights_of(j), [0.25, 0.5])
    # loss: L = (4, 1) → ĝ = (1/2, 0), (0, 1) → w = (4/5, 1/5) → d = (2/5, 1/5)
    close(MGDA(normalization="loss")(j, losses=torch.tensor([4.0, 1.0])), [0.4, 0.2])
    # loss+: n = L·‖g‖ = (8, 1) → ĝ = (1/4, 0), (0, 1) → w = (16/17, 1/17) → d = (4/17, 1/17)
    close(MGDA(normalization="loss+")(j, losses=torch.tensor([4.0, 1.0])), [4 / 17, 1 / 17])


def test_mgda_loss_normalisation_needs_losses():
    with pytest.raises(ValueError, match="losses"):
        MGDA(normalization="loss")(J120)
    assert MGDA(normalization="loss+").needs_losses and not MGDA().needs_losses
    with pytest.raises(ValueError, match="non-negative"):
        MGDA(normalization="loss")(J120, losses=torch.tensor([-1.0, 1.0]))


def test_mgda_pareto_stationary_gives_zero():
    j = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    close(MGDA()(j), [0.0, 0.0])


def test_pcgrad_120():
    # g1·g2 = −1/2 < 0, so each is projected on the normal plane of the other:
    # g1' = g1 − (−1/2)/1 · g2 = (3/4, √3/4);  g2' = g2 + g1/2 = (0, √3/2)
    # d = g1' + g2' = (3/4, 3√3/4) = 3/2 (g1 + g2); weights (3/2, 3/2).
    close(PCGrad()(J120), [0.75, 3 * R3 / 4])
    close(PCGrad().weights_of(J120), [1.5, 1.5])
    for g_pc in ([0.75, R3 / 4], [0.0, R3 / 2]):
        assert abs(float(torch.tensor(g_pc, dtype=torch.float64) @ (G2 if g_pc[0] else G1))) < 1e-12


def test_pcgrad_leaves_non_conflicting_gradients_alone():
    j = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    close(PCGrad()(j), [2.0, 1.0])


def test_pcgrad_three_tasks_depends_on_order_but_is_seeded():
    j = torch.tensor([[1.0, 0.0, 0.0], [-0.9, 1.0, 0.2], [-0.5, -0.8, 1.0]], dtype=torch.float64)
    results = {tuple(PCGrad(seed=s)(j).tolist()) for s in range(30)}
    assert len(results) > 1  # the visiting order matters with three tasks
    assert len({tuple(PCGrad(seed=1)(j).tolist()) for _ in range(3)}) == 1


def test_imtlg_120():
    # α = G⁻¹n / 1ᵀG⁻¹n with n = (1, 1): by symmetry α = (1/2, 1/2), d = (1/4, √3/4);
    # ⟨d, u1⟩ = 1/4 = ⟨d, u2⟩ (= −1/8 + 3/8).
    d = IMTLG()(J120)
    close(d, [0.25, R3 / 4])
    close(d @ G1, float(d @ G2))


def test_imtlg_equal_projections_unequal_norms():
    # g1 = (1, 0), g2 = (0, 3): G = diag(1, 9), n = (1, 3), G⁻¹n = (1, 1/3), α = (3/4, 1/4),
    # d = (3/4, 3/4): ⟨d, u1⟩ = ⟨d, u2⟩ = 3/4.
    j = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    close(IMTLG().weights_of(j), [0.75, 0.25])
    close(IMTLG()(j), [0.75, 0.75])
    # three random tasks: equal projections on every unit gradient, weights summing to 1
    j3 = torch.tensor([[1.0, 0.2, 0.0, 1.0], [-0.3, 2.0, 0.5, 0.0], [0.4, -1.0, 1.5, 0.3]], dtype=torch.float64)
    d, w = IMTLG()(j3), IMTLG().weights_of(j3)
    proj = (j3 / j3.norm(dim=1, keepdim=True)) @ d
    close(proj, proj[0].repeat(3))
    close(w.sum(), 1.0)


def test_cagrad_120():
    # g0 = (g1+g2)/2 = (1/4, √3/4), ‖g0‖ = 1/2. g_w = g0 + t(g1−g2)/2 with (g1−g2) ⊥ g0,
    # so ⟨g_w, g0⟩ is constant and ‖g_w‖ is smallest at t = 0: w = (1/2, 1/2), g_w = g0;
    # d = g0 + c‖g0‖ g0/‖g0‖ = (1 + c) g0. With c = 1/2: d = 3/2 g0 = (3/8, 3√3/8);
    # rescaled by 1 + c² = 5/4: d = 6/5 g0; by 1 + c = 3/2: d = g0.
    close(CAGrad(c=0.5, rescale="none")(J120), [3 / 8, 3 * R3 / 8])
    close(CAGrad(c=0.5)(J120), [6 / 5 * 0.25, 6 / 5 * R3 / 4])
    close(CAGrad(c=0.5, rescale="1+c")(J120), [0.25, R3 / 4])
    close(CAGrad(c=0.0)(J120), Mean()(J120))


def test_cagrad_boundary_solution():
    # g1 = (1, 0), g2 = (0, 2): g0 = (1/2, 1), ‖g0‖ = √5/2; c = 1/2 → ρ = c‖g0‖ = √5/4.
    # f(w) = ⟨g_w, g0⟩ + ρ‖g_w‖ with g_w = (w, 2 − 2w): f'(w) = −3/2 + ρ⟨g_w, g1−g2⟩/‖g_w‖
    # ≤ −3/2 + ρ‖g1−g2‖ = −3/2 + 5/4 < 0, so w = 1, g_w = g1 and d = g0 + ρ g1 = (1/2 + √5/4, 1).
    j = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    close(CAGrad(c=0.5, rescale="none")(j), [0.5 + math.sqrt(5) / 4, 1.0])


def test_upgrad_120():
    # g1 conflicts with g2: its projection on the dual cone is its projection on the
    # half-space ⟨g2, x⟩ ≥ 0: g1 + g2/2 = (3/4, √3/4), which keeps ⟨g1, ·⟩ = 3/4 ≥ 0; likewise
    # g2 → g2 + g1/2 = (0, √3/2). The mean: (3/8, 3√3/8); weights (3/4, 3/4).
    close(UPGrad()(J120), [3 / 8, 3 * R3 / 8])
    close(UPGrad().weights_of(J120), [0.75, 0.75])


def test_upgrad_keeps_rows_already_in_the_cone():
    # g1 = (1, 0), g2 = (1, 1): no conflict, both are in the dual cone: d = mean.
    j = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    close(UPGrad()(j), [1.0, 0.5])
    # g1 = (1, 0), g2 = (−1, 1): g1 → g1 + g2/2 = (1/2, 1/2); g2 → g2 + g1 = (0, 1); mean (1/4, 3/4)
    close(UPGrad()(torch.tensor([[1.0, 0.0], [-1.0, 1.0]], dtype=torch.float64)), [0.25, 0.75])


def test_aligned_mtl_120():
    # G = [[1, −½], [−½, 1]]: eigenpairs ½ ↔ v1 = (1, 1)/√2 and 3/2 ↔ v2 = (1, −1)/√2;
    # σ² = min = ½. B = σ V Λ^{-1/2} Vᵀ = v1v1ᵀ + (1/√3) v2v2ᵀ; w = B 1 = v1 (v1·1) = (1, 1)
    # (1 ⊥ v2); d = g1 + g2 = (1/2, √3/2).
    close(AlignedMTL().weights_of(J120), [1.0, 1.0])
    close(AlignedMTL()(J120), SUM)
    # the aligned gradients B J are orthogonal with equal norms σ: (BJ)(BJ)ᵀ = B G B = σ² I
    b = torch.tensor([[1 + 1 / R3, 1 - 1 / R3], [1 - 1 / R3, 1 + 1 / R3]], dtype=torch.float64) / 2
    aligned = b @ J120
    close(aligned @ aligned.T, 0.5 * torch.eye(2, dtype=torch.float64))
    # with median / rmse: σ² = (½ + 3/2)/2 = 1 → w = (√2, √2) (torch's median of two values
    # is the lower one, ½, so "median" equals "min" here)
    close(AlignedMTL(scale_mode="rmse").weights_of(J120), [math.sqrt(2), math.sqrt(2)])
    close(AlignedMTL(scale_mode="median").weights_of(J120), [1.0, 1.0])


def test_aligned_mtl_scale_modes():
    # G = diag(4, 1): eigenvalues 1, 4. min: σ² = 1 → w = (1/2, 1), d = (1, 1);
    # rmse: σ² = 5/2 → w = √(5/2) (1/2, 1), d = √(5/2) (1, 1).
    j = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    close(AlignedMTL()(j), [1.0, 1.0])
    s = math.sqrt(2.5)
    close(AlignedMTL(scale_mode="rmse")(j), [s, s])


def test_nash_mtl_hand_worked():
    # G = diag(4, 1/4): G α = 1/α → 4α1 = 1/α1, α2/4 = 1/α2 → α = (1/2, 2); d = (1, 1).
    j = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    close(NashMTL().weights_of(j), [0.5, 2.0])
    close(NashMTL()(j), [1.0, 1.0])
    # 120°: α1 = α2 = a, (Gα)_1 = a(1 − 1/2) = 1/a → a = √2; d = √2 (g1 + g2), ‖d‖ = √2 = √K
    d = NashMTL()(J120)
    close(d, math.sqrt(2) * SUM)
    close(d.norm(), math.sqrt(2))


def test_nash_mtl_is_invariant_to_each_task_scale():
    j = torch.tensor([[1.0, 0.3, -0.2], [-0.4, 1.0, 0.5], [0.2, -0.1, 1.0]], dtype=torch.float64)
    scaled = j * torch.tensor([[10.0], [0.01], [3.0]], dtype=torch.float64)
    close(NashMTL()(j), NashMTL()(scaled), tol=1e-8)
    d = NashMTL()(j)
    close((j @ d) * NashMTL().weights_of(j), torch.ones(3, dtype=torch.float64), tol=1e-8)


def test_nash_mtl_fallback_warns_and_uses_mgda():
    j = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 1.0]], dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="NashMTL.*MGDA"):
        d = NashMTL()(j)
    close(d, MGDA()(j))


def test_nash_mtl_zero_rows_are_left_out():
    j = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        close(NashMTL().weights_of(j), [0.5, 0.0, 2.0])


def test_nash_mtl_ccp_agrees_with_newton():
    pytest.importorskip("scipy")
    j = torch.tensor([[1.0, 0.3, -0.2], [-0.4, 1.0, 0.5], [0.2, -0.1, 1.0]], dtype=torch.float64)
    close(NashMTL(solver="ccp")(j), NashMTL()(j), tol=1e-5)


def test_nash_mtl_warm_start_state():
    agg = NashMTL()
    agg(J120, tasks=[3, 1])
    assert set(agg.alpha_) == {1, 3}
    state = agg.state_dict()
    other = NashMTL()
    other.load_state_dict(state)
    assert other.alpha_ == agg.alpha_


def test_gradvac_two_steps_120():
    # β = 1/2, targets φ̂ start at 0. Step 1: φ = cos 120° = −1/2 < 0 → as PCGrad,
    # d = 3/2 (g1 + g2); φ̂ ← ½·0 + ½·(−½) = −1/4 for both pairs.
    # Step 2 (same J): φ = −1/2 < −1/4 → g1' = g1 + a g2 with
    # a = (φ̂√(1−φ²) − φ√(1−φ̂²)) / √(1−φ̂²) = ½ − (√3/8)/(√15/4) = ½ − 1/(2√5),
    # which sets cos(g1', g2) = −1/4; symmetrically for g2. d = (1 + a)(g1 + g2).
    agg = GradVac(beta=0.5)
    close(agg(J120), 1.5 * SUM)
    close(torch.as_tensor(agg.targets_), [[0.0, -0.25], [-0.25, 0.0]])
    a = 0.5 - 1 / (2 * math.sqrt(5))
    close(agg(J120), (1 + a) * SUM)
    g1p = G1 + a * G2
    close(g1p @ G2 / g1p.norm(), -0.25)


def test_gradvac_state_is_keyed_by_task():
    agg = GradVac(beta=0.5)
    agg(J120, tasks=[2, 0])
    t = torch.as_tensor(agg.targets_)
    assert t.shape == (3, 3) and t[1].abs().sum() == 0 and t[:, 1].abs().sum() == 0
    close(t[2, 0], -0.25)
    close(t[0, 2], -0.25)


def test_graddrop_keeps_one_sign_per_coordinate():
    # coordinate 0: both positive → kept whole (sum 3); coordinate 1: +2 and −1 → either the
    # positive part (2) or the negative part (−1); coordinate 2: −1, −1 → −2.
    j = torch.tensor([[1.0, 2.0, -1.0], [2.0, -1.0, -1.0]], dtype=torch.float64)
    seen = set()
    for seed in range(40):
        d = GradDrop(seed=seed)(j)
        assert d[0] == 3.0 and d[2] == -2.0
        assert float(d[1]) in (2.0, -1.0)
        seen.add(float(d[1]))
    assert seen == {2.0, -1.0}


def test_graddrop_sign_frequency_matches_purity():
    # P = ½(1 + Σg/Σ|g|) = ½(1 + 1/3) = 2/3 for the coordinate (+2, −1)
    p = 20000
    j = torch.stack([torch.full((p,), 2.0, dtype=torch.float64), torch.full((p,), -1.0, dtype=torch.float64)])
    d = GradDrop(seed=0)(j)
    frac_positive = float((d > 0).double().mean())
    assert abs(frac_positive - 2 / 3) < 0.02


def test_graddrop_leak():
    j = torch.tensor([[1.0, 2.0], [-3.0, 1.0]], dtype=torch.float64)
    close(GradDrop(leak=1.0)(j), j.sum(0))
    # per-task leak: task 0 always kept whole; task 1 masked
    d = GradDrop(leak=[1.0, 0.0], seed=0)(j)
    assert float(d[1]) == 3.0  # no conflict in coordinate 1
    assert float(d[0]) in (1.0 - 3.0, 1.0)
