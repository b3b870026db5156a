"""``reference.train``: training the lecture's models."""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from hypothesis import given
from scipy import stats

from reference.change_of_variables import negative_log_likelihood
from reference.distributions import make_dataset
from reference.flows.chain import planar_chain_logpdf, realnvp_init, realnvp_logpdf
from reference.flows.planar import planar_constrain, planar_init
from reference.train import flatten_params, minibatch_indices, train_mle, train_planar, train_realnvp
from tests.strategies import seeds

K_SE = 5.0  # statistical tolerances below are K_SE standard errors


# --------------------------------------------------------------------------------------
# 1. Maximum-likelihood training of normalizing flows  [lecture: eq. (1)]
# --------------------------------------------------------------------------------------


def gaussian_data(n, seed):
    """n points of N(m, A A^T) with A = [[1, 0], [0.8, 0.5]], m = (1, -0.5), and its entropy."""
    A, m = np.array([[1.0, 0.0], [0.8, 0.5]]), np.array([1.0, -0.5])
    x = np.random.default_rng(seed).standard_normal((n, 2)) @ A.T + m
    return x, stats.multivariate_normal(m, A @ A.T).entropy()


def nll(log_p1, params, x):
    return negative_log_likelihood(lambda v: log_p1(params, v), x)


@given(seeds)
def test_flatten_params_round_trips_and_carries_gradients(seed):
    rng = np.random.default_rng(seed)
    params = [realnvp_init(3, 2, (4,), rng), {"c": np.array(rng.normal()), "v": (rng.normal(size=2),)}]
    theta, unflatten = flatten_params(params)
    back = unflatten(theta)
    assert theta.ndim == 1 and theta.size == sum(np.size(leaf) for leaf in _leaves(params))
    assert type(back) is list and type(back[0][0]["s"][0]) is tuple and type(back[1]["v"]) is tuple
    for a, b in zip(_leaves(params), _leaves(back)):
        assert np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    # the gradient through unflatten is the gradient on the pytree, flattened
    x = rng.normal(size=(5, 3))
    f = lambda p: anp.sum(realnvp_logpdf(p[0], x)) + p[1]["c"] * anp.sum(p[1]["v"][0])  # noqa: E731
    g_flat = grad(lambda th: f(unflatten(th)))(theta)
    np.testing.assert_allclose(g_flat, flatten_params(grad(f)(params))[0], rtol=1e-12, atol=1e-14)
    # negative control: a reversed theta unflattens to other parameters
    assert not all(np.array_equal(a, b) for a, b in zip(_leaves(params), _leaves(unflatten(theta[::-1]))))


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for k in tree for leaf in _leaves(tree[k])]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


@given(seeds)
def test_minibatches_are_resampled_from_the_data_by_the_rng(seed):
    idx = minibatch_indices(50, 30, 20, np.random.default_rng(seed))
    assert idx.shape == (30, 20) and idx.min() >= 0 and idx.max() < 50
    np.testing.assert_array_equal(idx, minibatch_indices(50, 30, 20, np.random.default_rng(seed)))
    # with replacement, and every point drawn about equally often: the count of each of
    # the 50 points over 600 draws is Binomial(600, 1/50), mean 12, sd ~3.4
    counts = np.bincount(idx.ravel(), minlength=50)
    assert np.all(np.abs(counts - 12) <= K_SE * np.sqrt(600 * 0.02 * 0.98))
    # negative control: another seed draws other batches
    assert not np.array_equal(idx, minibatch_indices(50, 30, 20, np.random.default_rng(seed + 1)))


def test_each_step_loss_is_the_nll_of_its_minibatch_at_the_current_params():
    data, _ = gaussian_data(300, 0)
    params = realnvp_init(2, 2, (4,), np.random.default_rng(1))
    seen = []
    _, losses = train_mle(realnvp_logpdf, params, data, 5, 16, 1e-2, np.random.default_rng(2),
                          callback=lambda p, k, loss: seen.append((p, k, loss)))
    batches = minibatch_indices(300, 5, 16, np.random.default_rng(2))
    assert [k for _, k, _ in seen] == list(range(5))
    for p, k, loss in seen:
        assert loss == losses[k]
        np.testing.assert_allclose(loss, nll(realnvp_logpdf, p, data[batches[k]]), rtol=1e-13)
    # negative control: the loss of step 1 is not the NLL of step 0's batch
    assert not np.isclose(losses[1], nll(realnvp_logpdf, seen[1][0], data[batches[0]]), rtol=1e-13, atol=0)


def test_realnvp_training_decreases_the_nll():
    data, _ = gaussian_data(1000, 0)
    p0 = realnvp_init(2, 2, (8,), np.random.default_rng(1))
    trained, losses = train_realnvp(data, 60, lr=1e-2, rng=np.random.default_rng(2), params=p0)
    before, after = nll(realnvp_logpdf, p0, data), nll(realnvp_logpdf, trained, data)
    assert after < before - 0.5
    assert losses[-10:].mean() < losses[:10].mean()
    # negative control: with lr = 0 nothing moves, and the NLL stays what it was
    frozen, _ = train_realnvp(data, 60, lr=0.0, rng=np.random.default_rng(2), params=p0)
    assert nll(realnvp_logpdf, frozen, data) == before


def test_planar_training_decreases_the_nll_and_returns_invertible_layers():
    data = make_dataset("moons", 500, np.random.default_rng(0))
    params, losses = train_planar(data, 40, n_layers=4, lr=2e-2, rng=np.random.default_rng(3))
    assert all(layer["a"] @ layer["b"] > -1 for layer in params)
    # the initial chain is the constrained planar_init draws of the same rng
    rng = np.random.default_rng(3)
    init = [planar_constrain(planar_init(2, rng, 0.5)) for _ in range(4)]
    before, after = nll(planar_chain_logpdf, init, data), nll(planar_chain_logpdf, params, data)
    assert after < before - 0.1
    np.testing.assert_allclose(losses.shape, (40,))
    # negative control: with lr = 0 the returned chain is the initial one
    frozen, _ = train_planar(data, 40, n_layers=4, lr=0.0, rng=np.random.default_rng(3))
    assert nll(planar_chain_logpdf, frozen, data) == before


@pytest.mark.parametrize("trainer", ["realnvp", "planar"])
def test_training_is_bit_for_bit_deterministic_under_a_seed(trainer):
    data = make_dataset("moons", 300, np.random.default_rng(0))

    def run(seed):
        if trainer == "realnvp":
            return train_realnvp(data, 15, n_layers=2, hidden=(8,), lr=1e-2, rng=np.random.default_rng(seed))
        return train_planar(data, 15, n_layers=3, rng=np.random.default_rng(seed))

    (p1, l1), (p2, l2), (p3, l3) = run(11), run(11), run(12)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(flatten_params(p1)[0], flatten_params(p2)[0])
    # negative control: another seed trains another model
    assert not np.array_equal(l1, l3)
    assert not np.array_equal(flatten_params(p1)[0], flatten_params(p3)[0])


def test_a_trained_realnvp_reaches_the_entropy_of_gaussian_data():
    # Two couplings with affine s and t can represent N(m, A A^T) exactly. The held-out
    # NLL estimates H(p_data) + KL(p_data || model); for the true density its standard
    # error is sqrt(Var(-log p) / n) = sqrt((d / 2) / n).
    data, entropy = gaussian_data(2000, 0)
    test, _ = gaussian_data(4000, 1)
    se = np.sqrt(1.0 / 4000)
    p0 = realnvp_init(2, 2, (), np.random.default_rng(5))
    trained, _ = train_realnvp(data, 300, lr=2e-2, rng=np.random.default_rng(1), params=p0)
    assert abs(nll(realnvp_logpdf, trained, test) - entropy) <= K_SE * se
    # negative control: the untrained model is told apart by the same bound
    assert abs(nll(realnvp_logpdf, p0, test) - entropy) > K_SE * se


@pytest.mark.slow
def test_a_trained_realnvp_with_mlps_reaches_the_entropy_of_gaussian_data():
    data, entropy = gaussian_data(4000, 0)
    test, _ = gaussian_data(8000, 1)
    se = np.sqrt(1.0 / 8000)
    trained, _ = train_realnvp(data, 1500, n_layers=4, hidden=(16, 16), lr=5e-3, rng=np.random.default_rng(2))
    assert abs(nll(realnvp_logpdf, trained, test) - entropy) <= K_SE * se
    shifted = test + np.array([0.3, 0.0])  # negative control: data shifted by 0.3 sd
    assert abs(nll(realnvp_logpdf, trained, shifted) - entropy) > K_SE * se


def test_a_non_finite_loss_stops_training_with_a_clear_error():
    params = {"w": np.zeros(2)}
    # a model that gives the data density 0 from the start: bad input, refused naming data and params
    log_p1 = lambda p, x: anp.sum(p["w"]) + anp.log(anp.zeros(x.shape[0]))  # noqa: E731  (-inf)
    with np.errstate(divide="ignore"), pytest.raises(
            ValueError, match=r"negative log-likelihood is not finite \(inf\) at the start: log_p1\(params, x\) gives "
                              r"the first minibatch of data density 0"):
        train_mle(log_p1, params, np.zeros((4, 2)), 3, 2, 1e-3, np.random.default_rng(0))
    # NLL(w) = -w + exp(2000 (w - 1/2)): finite at w = 0, where its slope is -1; Adam's first step (lr = 1)
    # moves w to 1, where the NLL is exp(1000) = inf (log p1 = -inf: density 0): a failed run, not bad input
    blows_up = lambda p, x: p["w"][0] - anp.exp(2000.0 * (p["w"][0] - 0.5)) + 0.0 * anp.sum(x, axis=1)  # noqa: E731
    with np.errstate(over="ignore"), pytest.raises(FloatingPointError, match="NLL became non-finite .* at step 1"):
        train_mle(blows_up, params, np.zeros((4, 2)), 3, 2, 1.0, np.random.default_rng(0))


DATA = np.zeros((10, 2))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: train_mle(None, {}, DATA, 3, 2, 1e-3, np.random.default_rng(0)), TypeError, "log_p1 must be callable"),
        (lambda: train_mle(realnvp_logpdf, {}, np.zeros(10), 3, 2, 1e-3, np.random.default_rng(0)), ValueError, r"data must have shape \(n, d\)"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 0, 2, 1e-3, np.random.default_rng(0)), ValueError, "n_steps must be an integer >= 1"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 3, 0, 1e-3, np.random.default_rng(0)), ValueError, "batch_size must be an integer >= 1"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 3, 2, -1e-3, np.random.default_rng(0)), ValueError, "lr must be >= 0"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 3, 2, np.nan, np.random.default_rng(0)), ValueError, "lr must be finite"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 3, 2, 1e-3, None), TypeError, "rng must be a numpy.random.Generator"),
        (lambda: train_mle(realnvp_logpdf, {}, DATA, 3, 2, 1e-3, np.random.default_rng(0), callback=1), TypeError, "callback must be callable"),
        (lambda: train_realnvp(np.zeros((10, 1)), 3, rng=np.random.default_rng(0)), ValueError,
         r"data must have dimension d >= 2 for RealNVP \(a coupling splits the coordinates\), got shape \(10, 1\)"),
        (lambda: train_realnvp(DATA, 3, n_layers=0, rng=np.random.default_rng(0)), ValueError, "n_layers must be an integer >= 1"),
        (lambda: train_realnvp(DATA + np.inf, 3, rng=np.random.default_rng(0)), ValueError, "data holds"),
        (lambda: train_planar(DATA, 3, n_layers=0, rng=np.random.default_rng(0)), ValueError, "n_layers must be an integer >= 1"),
        (lambda: train_planar(DATA, 3), TypeError, "rng must be a numpy.random.Generator"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    with pytest.raises(error, match=match):
        call()
