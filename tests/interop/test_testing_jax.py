"""JAX implementations through the checkers: ``from_jax``/``to_jax`` and ``framework="jax"``.

A path, an RK4 loop (eager, and jitted with ``lax.fori_loop`` calling a NumPy field
through ``jax.pure_callback``) and a CNF likelihood with an exact divergence by
``jax.jacfwd``, in float64 and float32: the correct ones pass, a broken one of each is
named. Skipped, with the install command as the reason, when JAX is missing.
"""

import functools
import math

import numpy as np
import pytest

from reference.testing import (
    check_conditional_path,
    check_divergence_estimator,
    check_log_likelihood,
    check_ode_solver,
    from_jax,
    is_jax_native,
    jax_native,
    to_jax,
)

jax = pytest.importorskip("jax", reason="JAX is missing: pip install 'jax==0.10.2' (or the project's jax extra)")
jnp = pytest.importorskip("jax.numpy")
lax = jax.lax


def _names(report):
    return frozenset(report.diagnosis.split("; ")) if report.diagnosis else frozenset()


# ----------------------------------------------------------------------------- implementations


@jax.jit
def linear_path(x0, x1, t):
    tc = t[:, None]
    return (1 - tc) * x0 + tc * x1, x1 - x0


@jax.jit
def conical_clamped(x0, x1, t):
    tc = t[:, None]
    x_t = tc * x1 + (1 - tc) * x0
    return x_t, (x1 - x_t) / jnp.maximum(1 - tc, 0.01)


def rk4_step(u, x, t, h):
    k1 = u(x, t)
    k2 = u(x + h / 2 * k1, t + h / 2)
    k3 = u(x + h / 2 * k2, t + h / 2)
    k4 = u(x + h * k3, t + h)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


@functools.lru_cache(maxsize=None)
def _compiled_rk4(u, one_short=False):
    """RK4 in lax.fori_loop, jitted once per field (n_steps and the interval are traced, not static).

    ``one_short`` is the loop over ``linspace(t0, t1, n_steps)``: n_steps - 1 steps of (t1 - t0) / (n_steps - 1).
    """
    @jax.jit
    def run(x, t0, t1, n):
        m = n - 1 if one_short else n
        h = (t1 - t0) / jnp.maximum(m, 1)
        return lax.fori_loop(0, m, lambda k, y: rk4_step(u, y, t0 + k * h, h), x)
    return run


def rk4_jit(u, x0, t0, t1, n):
    return _compiled_rk4(u)(x0, jnp.asarray(t0, x0.dtype), jnp.asarray(t1, x0.dtype), n)


def rk4_linspace(u, x0, t0, t1, n):
    return _compiled_rk4(u, True)(x0, jnp.asarray(t0, x0.dtype), jnp.asarray(t1, x0.dtype), n)


@functools.lru_cache(maxsize=None)
def _compiled_cnf(u, n_steps=8):
    """d/dt [x, l] = [u, div u] by RK4 from t = 1 to 0, the divergence the trace of jax.jacfwd's Jacobian."""
    def rhs(state, t):
        y = state[:, :-1]
        jac = jax.vmap(lambda yi: jax.jacfwd(lambda z: u(z[None], t)[0])(yi))(y)
        return jnp.concatenate([u(y, t), jnp.trace(jac, axis1=1, axis2=2)[:, None]], axis=1)

    @jax.jit
    def run(x, div_sign):
        h = -1.0 / n_steps
        state = jnp.concatenate([x, jnp.zeros((x.shape[0], 1), x.dtype)], axis=1)
        state = lax.fori_loop(0, n_steps, lambda k, s: rk4_step(rhs, s, 1.0 + k * h, h), state)
        z, integral = state[:, :-1], -state[:, -1]
        return -0.5 * jnp.sum(z**2, axis=1) - 0.5 * x.shape[1] * math.log(2 * math.pi) + div_sign * integral
    return run


def cnf_log_likelihood(u, x, div_sign=-1.0):
    """log p1(x) = log p0(x(0)) - int_0^1 div u (``div_sign = +1`` adds it: the mistake)."""
    return _compiled_cnf(u)(x, div_sign)


@functools.partial(jax.jit, static_argnums=0)
def _quadratic_form(u, x, t, eps):
    _, jvp = jax.jvp(lambda y: u(y, t), (x,), (eps,))
    return jnp.sum(eps * jvp, axis=1)


def hutchinson(u, x, t, rng):
    """eps^T J eps by one Jacobian-vector product, a Rademacher probe per point drawn from rng."""
    return _quadratic_form(u, x, t, jnp.asarray(rng.choice([-1.0, 1.0], size=x.shape), dtype=x.dtype))


# ----------------------------------------------------------------------------- checks


def test_a_jax_path_passes_in_float64_and_float32_and_a_clamped_one_is_named():
    # each new shape compiles anew in JAX: two dimensions keep this quick (the NumPy and PyTorch catalogues run all)
    assert check_conditional_path(from_jax(linear_path), dims=(1, 3))
    assert check_conditional_path(from_jax(linear_path, dtype="float32"), dims=(5,))
    clamped = check_conditional_path(from_jax(conical_clamped, dtype="float32"), dims=(2,))
    assert not clamped and _names(clamped) == {"velocity wrong only near t = 1"}, str(clamped)


def test_a_jitted_jax_rk4_loop_has_order_4_and_one_over_linspace_is_named():
    # three step counts: JAX calls back into the NumPy field through the host at every stage
    report = check_ode_solver(from_jax(rk4_jit), 4, steps=[4, 8, 16])
    assert report, str(report)
    assert all(f"P{i}" in " ".join(report.coverage) for i in range(1, 5))
    short = check_ode_solver(from_jax(rk4_linspace), 4, steps=[4, 8, 16])
    assert not short and _names(short) == {"takes n_steps - 1 steps"}, str(short)


def test_a_jax_cnf_with_an_exact_divergence_passes_and_a_flipped_sign_is_named():
    # one dimension: JAX compiles the augmented field once per field and shape (the NumPy and PyTorch
    # catalogues cover every dimension)
    report = check_log_likelihood(cnf_log_likelihood, framework="jax", atol=1e-3, n=4, dims=(3,))
    assert report, str(report)
    flipped = check_log_likelihood(lambda u, x: cnf_log_likelihood(u, x, div_sign=1.0), framework="jax", atol=1e-3,
                                   n=4, dims=(3,))
    assert not flipped and _names(flipped) == {"divergence sign flipped"}, str(flipped)


def test_a_jax_hutchinson_estimator_is_unbiased():
    report = check_divergence_estimator(hutchinson, framework="jax",
                                        n_repeats=500, dims=(1, 3))
    assert report and any("per point" in n for n in report.notes), str(report)


def test_the_jax_adapters_keep_precision_and_do_not_change_jax_s_global_setting():
    before = jax.config.jax_enable_x64
    out = from_jax(lambda x: x * 2)(np.ones((2, 2)))
    assert out.dtype == np.float64 and jax.config.jax_enable_x64 == before
    bf16 = from_jax(lambda x: x + 1, dtype="bfloat16")
    assert bf16(np.ones((1, 2))).dtype == np.float32 and bf16.__reference_precision__.name == "bfloat16"
    f = to_jax(lambda x, t: x * t)
    assert is_jax_native(f) and float(f(jnp.ones(2), 3.0)[0]) == 3.0
    native = jax_native(lambda x, t: x + t)
    assert from_jax(lambda g, x: g(x, 1.0))(native, np.zeros((1, 1)))[0, 0] == 1.0
    with pytest.raises(TypeError, match="dtype"):
        from_jax(lambda x: x, dtype=None)
