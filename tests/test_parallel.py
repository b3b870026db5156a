"""``reference._parallel``: safe when two threads use the package at once.

Two samplings run concurrently give what they give one after the other, and leave BLAS
on the thread count it had; BLAS limits entered and left out of order from two threads
nest; the worker pool is created once however many threads race for it.
"""

import threading
import time
from concurrent.futures import Future

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_info

from reference.engines import parallel as _parallel
from reference.engines.mlp import VelocityNetwork
from reference.nn import velocity_init
from reference.train import sample_model

START = 3
"""BLAS threads set before each test, so that a limit of 1 left behind is visible (whatever the machine's default)."""


def blas_threads():
    """The thread counts of the BLAS libraries loaded (empty when threadpoolctl finds none)."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def in_a_thread_of_its_own(fn):
    """``fn()`` on a short-lived thread: recent threadpoolctl lets one thread at a time change OpenBLAS's
    count and hands that right on when the thread ends, so the test's own thread never keeps it."""
    out = []
    th = threading.Thread(target=lambda: out.append(fn()))
    th.start()
    th.join()
    return out[0]


@pytest.fixture
def blas_at_start():
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library to limit")
    limiter = in_a_thread_of_its_own(lambda: ThreadpoolController().limit(limits=START, user_api="blas"))
    assert set(blas_threads()) == {START}
    yield
    in_a_thread_of_its_own(limiter.restore_original_limits)


def run_in_threads(*jobs, timeout=60.0):
    """Run each job on its own thread, all started together; return their results in order."""
    barrier = threading.Barrier(len(jobs))
    results, errors = [None] * len(jobs), []

    def run(k, job):
        try:
            barrier.wait()
            results[k] = job()
        except BaseException as err:  # reported in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=run, args=(k, job)) for k, job in enumerate(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    assert not any(th.is_alive() for th in threads), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]
    return results


def test_two_samplings_at_once_give_the_sequential_results_and_restore_blas(blas_at_start):
    params = velocity_init(2, (32, 32), np.random.default_rng(0))
    n = 2 * VelocityNetwork.BLOCK_ROWS + 5  # cut into blocks evaluated on two threads

    def sample(seed):
        return sample_model(params, n, np.random.default_rng(seed), "rk4", 4)

    sequential = [sample(1), sample(2)]
    for _ in range(3):  # three rounds of overlapping calls
        concurrent = run_in_threads(lambda: sample(1), lambda: sample(2))
        for got, want in zip(concurrent, sequential):
            # equal to rounding (which of the pool's threads runs a block can change the last bit);
            # blocks mixed up between the calls would be off by O(1)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)
        assert set(blas_threads()) == {START}
    # negative control: the comparison tells the two samplings apart
    assert not np.allclose(concurrent[0], sequential[1], rtol=1e-13, atol=1e-14)


def test_a_shared_velocity_network_on_two_threads_matches_one_thread(blas_at_start):
    u = VelocityNetwork(velocity_init(3, (16, 16), np.random.default_rng(1)))
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(3 * VelocityNetwork.BLOCK_ROWS, 3)) for _ in range(2)]
    want = [u(x, 0.4) for x in xs]
    got = run_in_threads(lambda: u(xs[0], 0.4), lambda: u(xs[1], 0.4))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-14)
    assert set(blas_threads()) == {START}


def _choreography(enter_and_leave):
    """Thread A enters, B enters, A leaves (and its thread ends), B leaves: BLAS's thread counts after each leaves."""
    a_in, b_in = threading.Event(), threading.Event()
    seen = {}

    def a():
        with enter_and_leave():
            a_in.set()
            b_in.wait(10)

    def b():
        a_in.wait(10)
        with enter_and_leave():
            b_in.set()
            thread_a.join(10)
            seen["after A left"] = blas_threads()
        seen["after B left"] = blas_threads()

    thread_a, thread_b = threading.Thread(target=a), threading.Thread(target=b)
    thread_a.start()
    thread_b.start()
    thread_b.join(20)
    assert not thread_a.is_alive() and not thread_b.is_alive()
    return seen


def test_blas_limits_entered_and_left_out_of_order_nest(blas_at_start):
    seen = _choreography(_parallel.blas_single_threaded)
    assert set(seen["after A left"]) == {1}  # B still runs: BLAS stays at one thread
    assert set(seen["after B left"]) == {START}  # both done: the count they found is back
    assert set(blas_threads()) == {START}


def test_negative_control_a_limit_per_call_leaves_blas_on_the_wrong_count(blas_at_start):
    # each call taking threadpoolctl's limit for itself: B found A's limit of 1, and restores it last
    controller = ThreadpoolController()
    seen = _choreography(lambda: controller.limit(limits=1, user_api="blas"))
    assert set(seen["after A left"]) == {START}  # B still runs, yet BLAS is back at START
    assert set(seen["after B left"]) == {1}  # and left on one thread for good


class _SlowPool:
    """Stands in for ThreadPoolExecutor: counts its constructions, slowly, so that a race has time to happen."""

    made = 0

    def __init__(self, *args, thread_name_prefix="", **kwargs):
        time.sleep(0.05)
        if thread_name_prefix == "reference":  # the pool (not the BLAS limit's thread)
            type(self).made += 1

    def map(self, fn, items):
        return map(fn, items)

    def submit(self, fn, *args):
        done = Future()
        done.set_result(fn(*args))
        return done

    def shutdown(self, wait=True):
        pass


def test_the_pool_is_created_once_when_threads_race_for_it(monkeypatch):
    if _parallel.N_WORKERS < 2:
        pytest.skip("one core: parallel_map runs its items in the calling thread")
    monkeypatch.setattr(_parallel, "_pool", None)
    monkeypatch.setattr(_parallel, "_blas_thread", None)
    monkeypatch.setattr(_parallel, "ThreadPoolExecutor", _SlowPool)
    _SlowPool.made = 0
    results = run_in_threads(*[lambda: _parallel.parallel_map(abs, [1, -2, 3])] * 4)
    assert results == [[1, 2, 3]] * 4
    assert _SlowPool.made == 1
    # negative control: the same race against a lazy creation without the lock makes several pools
    _SlowPool.made = 0
    state = {}

    def unlocked():
        if state.get("pool") is None:
            state["pool"] = _SlowPool(thread_name_prefix="reference")
        return state["pool"]

    run_in_threads(*[unlocked] * 4)
    assert _SlowPool.made > 1


def test_a_call_from_inside_a_worker_runs_inline_without_deadlock():
    nested = run_in_threads(lambda: _parallel.parallel_map(lambda i: _parallel.parallel_map(abs, [i, -i]), [1, 2, 3]),
                            timeout=20.0)
    assert nested == [[[1, 1], [2, 2], [3, 3]]]
