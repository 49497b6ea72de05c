"""Series generators against independent computations on small fixed arrays."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import scipy.stats
import torch

from mtlkit.auxiliary import (
    AbsChanges,
    Autoregressive,
    Fourier,
    Kurtosis,
    NextWindow,
    SampleEntropy,
    Skewness,
    Std,
    ar_coefficients,
    sample_entropy,
    split_window,
)

X = np.random.default_rng(3).normal(size=(4, 3, 20))


def test_std_is_numpy_std_per_channel():
    aux = Std().generate(X)
    assert aux.targets.shape == (4, 3) and aux.targets.dtype == torch.float32
    np.testing.assert_allclose(aux.targets.numpy(), X.std(axis=2), rtol=1e-6)
    np.testing.assert_allclose(Std(ddof=1).generate(X).targets.numpy(), X.std(axis=2, ddof=1), rtol=1e-6)
    assert aux.mask.all()
    assert aux.task.kind == "regression" and aux.task.dim == 3
    assert aux.task.role == "auxiliary" and aux.task.weight == 0.1 and aux.task.name == "aux_std"


def test_std_names_channels_and_accepts_two_dimensional_series():
    aux = Std().generate(X, columns=["acc_x", "acc_y", "acc_z"])
    assert aux.names == ("std[acc_x]", "std[acc_y]", "std[acc_z]")
    one = Std().generate(X[:, 0, :])  # (N, T) = one channel
    np.testing.assert_allclose(one.targets.numpy()[:, 0], X[:, 0].std(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="2 channel name"):
        Std().generate(X, columns=["a", "b"])


def test_abs_changes_by_hand():
    x = np.array([[[1.0, 3.0, 2.0, 2.0, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0]]])
    # |3-1| + |2-3| + |2-2| + |-1-2| = 2 + 1 + 0 + 3 = 6; a constant channel: 0
    np.testing.assert_allclose(AbsChanges().generate(x).targets.numpy(), [[6.0, 0.0]])
    loops = [[sum(abs(s[t + 1] - s[t]) for t in range(len(s) - 1)) for s in sample] for sample in X]
    np.testing.assert_allclose(AbsChanges().generate(X).targets.numpy(), loops, rtol=1e-6)


def test_fourier_matches_full_complex_fft():
    k = 5
    full = np.fft.fft(X, axis=2)  # the full DFT, not rfft: an independent route
    want = (np.abs(full[..., 1:k + 1]) / X.shape[2]).reshape(4, -1)
    aux = Fourier(k=k).generate(X)
    np.testing.assert_allclose(aux.targets.numpy(), want, rtol=1e-5, atol=1e-7)
    assert aux.task.dim == 3 * k
    assert aux.names[:2] == ("fourier_1[ch0]", "fourier_2[ch0]") and aux.names[k] == "fourier_1[ch1]"
    with_dc = Fourier(k=k, include_dc=True).generate(X).targets.numpy().reshape(4, 3, k)
    np.testing.assert_allclose(with_dc[..., 0], np.abs(X.mean(axis=2)), rtol=1e-5)


def test_fourier_of_a_sinusoid_is_half_its_amplitude():
    t = np.arange(32)
    x = (3.0 * np.cos(2 * np.pi * 4 * t / 32) + 1.0)[None, None]  # amplitude 3 at bin 4, mean 1
    y = Fourier(k=6, include_dc=True).generate(x).targets.numpy()[0]
    np.testing.assert_allclose(y, [1.0, 0, 0, 0, 1.5, 0], atol=1e-6)


def test_fourier_rejects_more_coefficients_than_the_series_has():
    with pytest.raises(ValueError, match="'k' parameter of Fourier is 11"):
        Fourier(k=11).generate(X)  # T = 20: 10 coefficients after DC
    Fourier(k=11, include_dc=True).generate(X)  # 11 with DC


def test_skewness_and_kurtosis_match_scipy():
    np.testing.assert_allclose(Skewness().generate(X).targets.numpy(),
                               scipy.stats.skew(X, axis=2, bias=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Kurtosis().generate(X).targets.numpy(),
                               scipy.stats.kurtosis(X, axis=2, fisher=True, bias=True), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(Kurtosis(fisher=False).generate(X).targets.numpy(),
                               scipy.stats.kurtosis(X, axis=2, fisher=False, bias=True), rtol=1e-5)


def test_skewness_of_a_constant_channel_is_masked_where_scipy_gives_nan():
    x = X[:2].copy()
    x[1, 2] = 4.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns about the constant channel
        ref = scipy.stats.skew(x, axis=2, bias=True)
    aux = Skewness().generate(x)
    np.testing.assert_array_equal(aux.mask.numpy(), ~np.isnan(ref))
    assert not aux.mask[1, 2] and aux.targets[1, 2] == 0
    assert not Kurtosis().generate(x).mask[1, 2]


def test_sample_entropy_by_hand():
    # x = 0 2 0 2 2 0: mean 1, every deviation ±1 -> std 1, so r = 0.5 gives tol = 0.5 and
    # only equal values match. m = 1, T = 6: templates start at i = 0..T-m-1 = 0..4.
    #   length 1: (0) (2) (0) (2) (2)            -> pairs i<j that match:
    #     value 0 at {0, 2}: 1 pair; value 2 at {1, 3, 4}: 3 pairs          B = 4
    #   length 2: (0,2) (2,0) (0,2) (2,2) (2,0)
    #     (0,2) at {0, 2}: 1 pair; (2,0) at {1, 4}: 1 pair                  A = 2
    #   SampEn = -ln(A/B) = -ln(2/4) = ln 2
    x = np.array([[[0.0, 2.0, 0.0, 2.0, 2.0, 0.0]]])
    aux = SampleEntropy(m=1, r=0.5).generate(x)
    assert aux.targets.item() == pytest.approx(math.log(2), rel=1e-6)


def test_sample_entropy_second_hand_example():
    # x = 1 2 1 2 1 2 1: mean 10/7, std = sqrt(12/49) ≈ 0.495; r = 0.2 -> tol ≈ 0.099.
    # m = 2, T = 7: templates start at 0..4.
    #   length 2: (1,2) (2,1) (1,2) (2,1) (1,2): (1,2) at {0,2,4}: 3 pairs; (2,1) at {1,3}: 1 -> B = 4
    #   length 3: (1,2,1) (2,1,2) (1,2,1) (2,1,2) (1,2,1): the same groups              -> A = 4
    #   SampEn = -ln(4/4) = 0 (a perfectly regular series)
    x = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0])
    assert float(sample_entropy(x, m=2, r=0.2)) == pytest.approx(0.0, abs=1e-12)


def _brute_force_sampen(s: np.ndarray, m: int, r: float) -> float:
    tol = r * s.std()
    n = len(s) - m
    b = a = 0
    for i in range(n):
        for j in range(i + 1, n):
            if max(abs(s[i + k] - s[j + k]) for k in range(m)) <= tol:
                b += 1
                if abs(s[i + m] - s[j + m]) <= tol:
                    a += 1
    return -math.log(a / b) if a and b else float("nan")


@pytest.mark.parametrize(("m", "r"), [(1, 0.2), (2, 0.2), (2, 0.5), (3, 0.3)])
def test_sample_entropy_matches_a_brute_force_double_loop(m, r):
    x = np.random.default_rng(m).normal(size=(3, 2, 40)).cumsum(axis=2)
    got = SampleEntropy(m=m, r=r).generate(x)
    want = np.array([[_brute_force_sampen(s, m, r) for s in sample] for sample in x])
    np.testing.assert_array_equal(got.mask.numpy(), ~np.isnan(want))
    np.testing.assert_allclose(got.targets.numpy()[got.mask.numpy()], want[~np.isnan(want)], rtol=1e-5)


def test_sample_entropy_without_matches_is_masked():
    ramp = np.arange(10.0)[None, None]  # tol = 0.2·std ≈ 0.57 < 1 = smallest distance: B = 0
    aux = SampleEntropy(m=2, r=0.2).generate(ramp)
    assert not aux.mask.any() and aux.targets.item() == 0


def test_ar_fit_equals_per_series_lstsq():
    x = np.random.default_rng(1).normal(size=(2, 2, 15))
    got = ar_coefficients(x, order=2)
    for n in range(2):
        for c in range(2):
            s = x[n, c]
            design = np.column_stack([s[1:-1], s[:-2], np.ones(13)])  # lag 1, lag 2, intercept
            coef = np.linalg.lstsq(design, s[2:], rcond=None)[0]
            np.testing.assert_allclose(got[n, c], coef[:2], rtol=1e-8)


@pytest.mark.parametrize("phi", [(0.8,), (0.6, -0.3)])
def test_ar_recovers_the_coefficients_of_a_synthetic_ar_process(phi):
    rng = np.random.default_rng(7)
    t, p = 4000, len(phi)
    eps = rng.normal(size=(2, t))
    x = np.zeros((2, t))
    for i in range(p, t):  # simulate x_t = 0.5 + Σ φ_k x_{t-k} + ε_t
        x[:, i] = 0.5 + sum(phi[k] * x[:, i - k - 1] for k in range(p)) + eps[:, i]
    aux = Autoregressive(order=p).generate(x[:, None, :])
    np.testing.assert_allclose(aux.targets.numpy(), np.tile(phi, (2, 1)), atol=0.04)
    assert aux.names == tuple(f"autoregressive_phi{k + 1}[ch0]" for k in range(p))


def test_ar_of_a_constant_channel_is_masked():
    x = np.stack([np.ones(12), np.random.default_rng(0).normal(size=12)])[None]
    aux = Autoregressive(order=2).generate(x)
    assert aux.mask.tolist() == [[False, False, True, True]]


def test_split_window_and_next_window():
    x = np.arange(24.0).reshape(2, 2, 6)
    inputs, targets = split_window(x, 2)
    np.testing.assert_array_equal(inputs, x[..., :4])
    np.testing.assert_array_equal(targets, x[..., 4:])
    aux = NextWindow(horizon=2).generate(x)
    np.testing.assert_array_equal(aux.targets.numpy(), targets.reshape(2, 4))
    np.testing.assert_array_equal(aux.inputs, x[..., :4])
    xt = torch.as_tensor(x)
    assert isinstance(NextWindow(horizon=1).generate(xt).inputs, torch.Tensor)
    with pytest.raises(ValueError, match="at least one input step"):
        split_window(x, 6)


def test_standardize_gives_zero_mean_unit_std_columns():
    g = Std(standardize=True)
    y = g.generate(X).targets.numpy()
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(y.std(0), 1, atol=1e-5)
    np.testing.assert_allclose(y * g.target_scale_ + g.target_mean_, X.std(axis=2), rtol=1e-5)


@pytest.mark.parametrize(("cls", "kw", "message"), [
    (Fourier, {"k": 0}, "The 'k' parameter of Fourier must be an int >= 1. Got 0."),
    (SampleEntropy, {"r": -0.1}, "The 'r' parameter of SampleEntropy must be a finite positive float. Got -0.1."),
    (SampleEntropy, {"m": 0}, "The 'm' parameter of SampleEntropy must be an int >= 1. Got 0."),
    (Autoregressive, {"order": 1.5}, "The 'order' parameter of Autoregressive must be an int >= 1. Got 1.5."),
    (NextWindow, {"horizon": 0}, "The 'horizon' parameter of NextWindow must be an int >= 1. Got 0."),
    (Std, {"ddof": -1}, "The 'ddof' parameter of Std must be an int >= 0. Got -1."),
    (Kurtosis, {"fisher": "yes"}, "The 'fisher' parameter of Kurtosis must be a bool. Got 'yes'."),
])
def test_bad_hyperparameters_are_named(cls, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(**kw)


def test_series_generators_reject_non_finite_inputs():
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Std().generate(bad)
