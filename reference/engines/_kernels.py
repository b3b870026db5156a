"""A hidden layer's bias and SiLU in one compiled pass, on an exp that vectorises  [lecture: Theorem 2 (v_theta)]

    z = a + b,   sigmoid(z) = 1 / (1 + e^-z),   silu(z) = z sigmoid(z) = z / (1 + e^-z)

NumPy's float64 ``exp`` is vectorised only on CPUs with AVX-512. On the others (AVX2:
most laptops, and the AMD EPYC machines the benchmarks were measured on) it is a scalar
loop of about 10 ns a value, and one evaluation of the lecture's network (three SiLU
layers of width 64) on 10,000 points takes 1.9 million of them: about 60% of the
evaluation's time, the matrix products taking most of the rest. Here numba compiles the
element-wise loop with LLVM for the CPU it runs on, which vectorises it (4 values per
instruction with AVX2, 8 with AVX-512): the bias, the exp, the division, in one pass
over the layer instead of five.

The exp is written out, since LLVM vectorises arithmetic but not a call to the C
library's exp. For x in [-708, 709.78]:

    e^x = 2^k e^r,   k = round(x / ln 2),   r = x - k ln 2  in  [-ln 2 / 2, ln 2 / 2]

- k is rounded by adding and subtracting 1.5 * 2^52 (the sum's last bits are then k);
- r is computed with ln 2 in two parts (Cody and Waite): ``LN2_HI`` has 32 significant
  bits, so ``k * LN2_HI`` is exact for |k| < 2^21 and so is its difference with x;
  ``LN2_LO = ln 2 - LN2_HI`` carries the rest;
- e^r is its Taylor polynomial of degree 13, whose truncation error is below
  0.347^14 / 14! = 4e-18 relative (0.04 of a unit in the last place), by Horner's rule;
- 2^(k - 1) is written directly into a float's exponent bits, and the product doubled
  (so that k = 1024 gives 2^1024 e^r: infinity when e^r >= 1, as e^x overflows).

Measured on 404,101 points over the whole range (``tests/test_kernels.py``, which checks
it): within 0.84 of a unit in the last place of e^x computed in 80-bit long double
(NumPy's own ``exp``: 0.51), and at most one unit from ``numpy.exp``. Below x = -708, e^x
is taken as e^-708 (3e-308): the kernels only use ``1 + e^-z``, which is then exactly 1
either way. Above 709.78 the result is infinite, like ``numpy.exp``'s, so for
z < -709.78 sigmoid(z) = 0 and silu(z) = -0 (for z in [-709.78, -708) silu(z) is taken
as z / (1 + e^708) instead of z / (1 + e^-z): both are below 3e-305 in magnitude). NaN
stays NaN. The multiply-adds may be fused (one rounding instead of two) where the
CPU has FMA, so results differ between CPUs in the last place, as ``numpy.exp``'s do.

Without numba (not installed, or ``REFERENCE_NUMBA=0`` in the environment), the same
layer is computed by NumPy's passes (``_bias_silu_numpy``, ``_bias_sigmoid_silu_numpy``)
with the same formulas.
"""

import functools
import math
import os
import warnings

import numpy as onp

__all__ = []

ENVIRONMENT_VARIABLE = "REFERENCE_NUMBA"
"""Set to ``0`` to compute the layers with NumPy's passes instead of the compiled kernels."""

_SHIFTER = 1.5 * 2.0**52  # adding it rounds |y| < 2^51 to an integer, which then sits in the last bits
_SHIFTER_BITS = int(onp.float64(_SHIFTER).view(onp.int64))
_INV_LN2 = 1.0 / math.log(2.0)
_LN2_HI = float.fromhex("0x1.62e42fee00000p-1")  # ln 2 to 32 bits
_LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")  # ln 2 - _LN2_HI, to 53 bits
_TAYLOR = tuple(1.0 / math.factorial(j) for j in range(14))  # e^r = sum_j r^j / j!, degree 13
_EXP_LOW, _EXP_HIGH = -708.0, 710.0  # x is clamped to this range (see the module's docstring)


def _bias_silu_numpy(a, b, scratch):
    """``a <- silu(a + b)`` in place by NumPy's passes; ``scratch``: a buffer of ``a``'s shape."""
    a += b                            # z = a + b
    onp.negative(a, out=scratch)
    onp.exp(scratch, out=scratch)
    scratch += 1.0                    # 1 + e^-z
    a /= scratch                      # silu(z) = z / (1 + e^-z)


def _bias_sigmoid_silu_numpy(a, b, s):
    """``s <- sigmoid(a + b)``, ``a <- silu(a + b)`` in place by NumPy's passes."""
    a += b                            # z = a + b
    onp.negative(a, out=s)
    onp.exp(s, out=s)
    s += 1.0
    onp.reciprocal(s, out=s)          # sigmoid(z) = 1 / (1 + e^-z)
    a *= s                            # silu(z) = z sigmoid(z)


def _compile():
    """The compiled ``(exp_array, bias_silu, bias_sigmoid_silu)``; raises if numba cannot build them."""
    from . import _kernels_numba as compiled  # imports numba: only when a fast engine first runs

    return compiled.exp_array, compiled.bias_silu, compiled.bias_sigmoid_silu


@functools.cache
def _compiled():
    """The compiled kernels, or None where they are turned off or numba cannot build them (said once)."""
    if os.environ.get(ENVIRONMENT_VARIABLE, "").strip() == "0":
        return None
    try:
        return _compile()
    except Exception as err:  # numba missing or broken: the NumPy passes compute the same layers
        warnings.warn(f"the compiled SiLU kernels are not available ({type(err).__name__}: {err}); "
                      "the fast engines use NumPy's exp instead, about twice as slow on CPUs without AVX-512",
                      RuntimeWarning, stacklevel=3)
        return None


def _contiguous(*arrays):
    return all(x.flags.c_contiguous and x.dtype == onp.float64 for x in arrays)


def _exp(x):
    """e^x by the compiled kernel (``numpy.exp`` without it), for the tests: ``x`` a 1-D float64 array."""
    kernels = _compiled()
    if kernels is None:
        return onp.exp(x)
    x = onp.ascontiguousarray(x, dtype=onp.float64)
    out = onp.empty_like(x)
    kernels[0](x, out)
    return out


def _bias_silu(a, b, scratch):
    """``a <- silu(a + b)`` in place: ``a`` of shape (n, w), ``b`` (w,); ``scratch`` like ``a`` (for NumPy's passes)."""
    kernels = _compiled()
    if kernels is not None and _contiguous(a, b):
        kernels[1](a, b)
    else:
        _bias_silu_numpy(a, b, scratch)


def _bias_sigmoid_silu(a, b, s):
    """``s <- sigmoid(a + b)``, ``a <- silu(a + b)`` in place: ``a`` and ``s`` of shape (n, w), ``b`` (w,)."""
    kernels = _compiled()
    if kernels is not None and _contiguous(a, b, s):
        kernels[2](a, b, s)
    else:
        _bias_sigmoid_silu_numpy(a, b, s)
