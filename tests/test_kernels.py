"""The compiled SiLU kernels of the fast engines: their exp to within one unit in the last place, their
layers equal to NumPy's passes, and the NumPy passes where numba is turned off or missing."""

import warnings

import numpy as np
import pytest

from reference.engines import _kernels
from reference.engines.mlp import VelocityNetwork
from reference.nn import velocity_apply, velocity_init

EXTENDED = np.finfo(np.longdouble).eps < 1e-18  # x86's 80-bit long double: 11 more bits than float64
needs_numba = pytest.mark.skipif(_kernels._compiled() is None, reason="the compiled kernels are not available")


def ulps_from_exact(value, x):
    """|value - e^x| in units of the last place of float64 at ``value``, e^x taken in extended precision."""
    exact = np.exp(x.astype(np.longdouble))
    return np.asarray(np.abs(value.astype(np.longdouble) - exact) / np.spacing(np.abs(value)).astype(np.longdouble),
                      dtype=np.float64)


def exp_arguments():
    rng = np.random.default_rng(0)
    return np.concatenate([
        rng.uniform(-708.0, 709.78, 200_000),           # the whole range
        rng.normal(0.0, 5.0, 200_000),                    # where a network's pre-activations are
        np.arange(-1021, 1024) * np.log(2.0),             # at the breaks of k = round(x / ln 2)
        (np.arange(-1021, 1024) + 0.5) * np.log(2.0),
        [0.0, -0.0, 1e-300, -1e-300, 1e-17, -1e-17, 0.5, -0.5, 708.0, -708.0, 709.78],
    ])


@needs_numba
@pytest.mark.skipif(not EXTENDED, reason="needs an 80-bit long double for the exact values")
def test_the_kernels_exp_is_within_one_unit_in_the_last_place():
    # the truncation of the degree-13 Taylor polynomial is below 0.04 of a unit, Horner's last step and the
    # scaling by 2^k round once each: the result is within one unit of e^x (0.85 measured)
    x = exp_arguments()
    ours = _kernels._exp(x)
    assert np.all(np.isfinite(ours))
    assert ulps_from_exact(ours, x).max() < 1.0
    # negative control: a result two units off is rejected by the same measure
    off = np.nextafter(np.nextafter(ours, np.inf), np.inf)
    assert ulps_from_exact(off, x).max() > 1.0


@needs_numba
def test_the_kernels_exp_is_numpys_to_one_unit_without_extended_precision():
    # both are within one unit of e^x (NumPy's by the C library's documented bound): at most two apart
    x = exp_arguments()
    ours, numpy = _kernels._exp(x), np.exp(x)
    assert np.max(np.abs(ours - numpy) / np.spacing(numpy)) <= 2.0
    # negative control: a polynomial of degree 10 (truncation up to 0.347^11 / 11!, about 1300 units) is not
    r = x - np.round(x / np.log(2.0)) * np.log(2.0)
    degree_10 = numpy - numpy * r**11 / 39916800.0
    assert np.max(np.abs(degree_10 - numpy) / np.spacing(numpy)) > 2.0


@needs_numba
def test_the_kernels_exp_at_its_edges():
    x = np.array([np.nan, np.inf, 710.0, 1e4, 709.78, 0.0, -708.0, -745.0, -1e4, -np.inf])
    out = _kernels._exp(x)
    assert np.isnan(out[0])                                       # NaN stays NaN
    assert np.all(out[1:4] == np.inf)                             # overflows as e^x does, past 709.78
    assert np.isfinite(out[4]) and abs(out[4] - np.exp(709.78)) <= 2 * np.spacing(np.exp(709.78))
    assert out[5] == 1.0
    assert np.all(out[6:] == out[6]) and 0 < out[6] < 3.4e-308    # below -708: e^-708, which 1 + e^x ignores
    assert 1.0 + out[6] == 1.0


def silu_arguments():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(0.0, 3.0, (300, 7)), rng.normal(0.0, 60.0, (300, 7)),
                        np.array([[-1e4, -800.0, -709.5, 0.0, 708.5, 1e4, 36.9]] * 2)])
    return a, rng.normal(size=7)


@needs_numba
def test_the_compiled_layers_are_numpys_passes():
    # silu(z) = z / (1 + e), e within one unit of e^-z: 1 + e, the division and the product each round once,
    # so silu and sigmoid are within four units of NumPy's (whose exp is also within one unit)
    a, b = silu_arguments()
    z = a + b
    tiny = z < -708.0  # there the kernel takes e^708 for e^-z: both results are below 3e-305 in magnitude
    expected_silu, expected_s = a.copy(), np.empty_like(a)
    with np.errstate(over="ignore"):
        _kernels._bias_sigmoid_silu_numpy(expected_silu, b, expected_s)
    silu, s = a.copy(), np.empty_like(a)
    _kernels._bias_sigmoid_silu(silu, b, s)
    only_silu = a.copy()
    _kernels._bias_silu(only_silu, b, np.empty_like(a))
    for got, expected in ((silu, expected_silu), (s, expected_s), (only_silu, expected_silu)):
        np.testing.assert_array_less(np.abs(got - expected)[~tiny], 4 * np.spacing(np.abs(expected))[~tiny] + 1e-300)
        assert np.all(np.abs(got[tiny]) < 3e-305) and np.all(np.abs(expected[tiny]) < 3e-305)
    assert np.array_equal(silu[z > 708.5], z[z > 708.5]) and np.all(s[z > 708.5] == 1.0)
    # negative control: the same comparison rejects a SiLU whose exp is one part in 1e14 off
    with np.errstate(over="ignore"):
        wrong = z / (1.0 + np.exp(-z) * (1 + 1e-14))
    assert not np.all(np.abs(wrong - expected_silu)[~tiny] < 4 * np.spacing(np.abs(expected_silu))[~tiny] + 1e-300)


def test_nan_reaches_the_output_of_either_kernel():
    a = np.array([[np.nan, 1.0]])
    for layer in (_kernels._bias_silu, _kernels._bias_silu_numpy):
        out = a.copy()
        layer(out, np.zeros(2), np.empty_like(out))
        assert np.isnan(out[0, 0]) and np.isfinite(out[0, 1])


def test_without_numba_the_engines_use_numpys_passes_and_agree(monkeypatch):
    rng = np.random.default_rng(2)
    params = velocity_init(2, (16, 16), rng)
    x, t = rng.normal(size=(50, 2)), rng.uniform(size=50)
    compiled = VelocityNetwork(params)(x, t)
    monkeypatch.setenv(_kernels.ENVIRONMENT_VARIABLE, "0")
    _kernels._compiled.cache_clear()
    try:
        assert _kernels._compiled() is None
        numpy = VelocityNetwork(params)(x, t)
    finally:
        monkeypatch.delenv(_kernels.ENVIRONMENT_VARIABLE)
        _kernels._compiled.cache_clear()
    readable = velocity_apply(params, x, t)
    np.testing.assert_allclose(compiled, readable, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(numpy, readable, rtol=1e-13, atol=1e-15)


def test_a_missing_numba_is_said_once_and_numpys_passes_take_over(monkeypatch):
    def broken():
        raise ImportError("No module named 'numba'")

    monkeypatch.setattr(_kernels, "_compile", broken)
    _kernels._compiled.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="NumPy's exp"):
            assert _kernels._compiled() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _kernels._compiled() is None  # said once
        a = np.array([[0.5, -2.0]])
        _kernels._bias_silu(a, np.zeros(2), np.empty_like(a))
        np.testing.assert_allclose(a, [[0.5 / (1 + np.exp(-0.5)), -2.0 / (1 + np.exp(2.0))]], rtol=1e-15)
    finally:
        monkeypatch.undo()
        _kernels._compiled.cache_clear()
