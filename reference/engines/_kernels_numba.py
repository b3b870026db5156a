"""The compiled kernels of ``_kernels`` (imported only when a fast engine first runs: it imports numba)  [lecture: Theorem 2 (v_theta)]

    e^x = 2^k e^r,   silu(z) = z / (1 + e^-z),   sigmoid(z) = 1 / (1 + e^-z)

The algorithm, its accuracy and its edge cases are described in ``_kernels``. Compiled for
the CPU it runs on at the first use, then cached beside this file (``__pycache__``), or in
numba's user cache where that is read-only.
"""

from numba import njit, types
from numba.extending import intrinsic

from ._kernels import _EXP_HIGH, _EXP_LOW, _INV_LN2, _LN2_HI, _LN2_LO, _SHIFTER, _SHIFTER_BITS, _TAYLOR

_OPTIONS = dict(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _TAYLOR


def _reinterpretation(source, target):
    """An intrinsic giving the ``target`` value with the same 64 bits as a ``source`` value (no conversion)."""
    @intrinsic
    def reinterpret(typingctx, value):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))
        return target(source), codegen
    return reinterpret


_float_bits = _reinterpretation(types.float64, types.int64)  # the bits of a float64, as an int64
_bits_float = _reinterpretation(types.int64, types.float64)  # the float64 with these bits


@njit(inline="always", **_OPTIONS)
def _exp(x):
    """e^x = 2^k e^r, k = round(x / ln 2), r = x - k ln 2, e^r by its Taylor polynomial of degree 13 (see ``_kernels``)."""
    x = _EXP_HIGH if x > _EXP_HIGH else x  # written so that NaN stays NaN
    x = _EXP_LOW if x < _EXP_LOW else x
    y = x * _INV_LN2 + _SHIFTER
    k = y - _SHIFTER                       # round(x / ln 2), exactly
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0                        # e^r
    half_scale = _bits_float((_float_bits(y) - _SHIFTER_BITS + 1022) << 52)  # 2^(k - 1)
    return (p * 2.0) * half_scale          # doubled first: one rounding, at the end


@njit("void(float64[::1], float64[::1])", **_OPTIONS)
def exp_array(x, out):
    """out <- e^x, element-wise."""
    for i in range(x.shape[0]):
        out[i] = _exp(x[i])


@njit("void(float64[:, ::1], float64[::1])", **_OPTIONS)
def bias_silu(a, b):
    """a <- silu(a + b) in place, b broadcast over the rows."""
    for i in range(a.shape[0]):
        row = a[i]
        for j in range(row.shape[0]):
            z = row[j] + b[j]
            row[j] = z / (1.0 + _exp(-z))


@njit("void(float64[:, ::1], float64[::1], float64[:, ::1])", **_OPTIONS)
def bias_sigmoid_silu(a, b, s):
    """s <- sigmoid(a + b), a <- silu(a + b) = (a + b) s, in place."""
    for i in range(a.shape[0]):
        row, s_row = a[i], s[i]
        for j in range(row.shape[0]):
            z = row[j] + b[j]
            sigmoid = 1.0 / (1.0 + _exp(-z))
            s_row[j] = sigmoid
            row[j] = z * sigmoid
