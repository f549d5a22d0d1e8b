"""The statistical worker (tasks/runtime/offload.py): statsforecast's fits run in a child process,
with the same results as here, so that their numba code (which holds the GIL) never stalls the
networks training in this process's threads."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tasks.components import references
from tasks.components.references import Statistical, cross_validation
from tasks.runtime import offload
from tests.helpers import imported, split_for, tiny_config


def monthly(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.3 * t + 8 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.5, n)


def hourly(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * t / 24) + 4 * np.sin(2 * np.pi * t / 168) + rng.normal(0, 1, n)


@pytest.fixture
def installed():
    offload.install()
    try:
        yield offload
    finally:
        offload.uninstall()


def test_the_worker_forecasts_what_this_process_forecasts_to_the_bit(installed):
    ys = [monthly(150, seed=s) for s in range(3)]
    values = np.concatenate(ys)
    split = split_for(values, ids=("a", "b", "c"), lengths=tuple(len(y) for y in ys), seq_length=24, horizon=2,
                      calibration=5)
    test = split.origins("test")
    there_cv = cross_validation(ys, "theta", 12, 2, 10)
    there_member = Statistical("ets", 12)(values, split, test, 2)
    hours = hourly(24 * 7 * 3)
    by_hour = split_for(hours, seq_length=48, horizon=3)
    there_mstl = Statistical("ets", 24, mstl=(24, 168))(hours, by_hour, by_hour.origins("test"), 3)
    assert [w.pid is not None for w in offload._pool.workers] == [True]  # they ran in one worker
    offload.uninstall()
    try:
        assert references.offload is None
        np.testing.assert_array_equal(cross_validation(ys, "theta", 12, 2, 10), there_cv)
        np.testing.assert_array_equal(Statistical("ets", 12)(values, split, test, 2), there_member)
        np.testing.assert_array_equal(
            Statistical("ets", 24, mstl=(24, 168))(hours, by_hour, by_hour.origins("test"), 3), there_mstl)
    finally:
        offload.install()


def test_a_models_error_in_the_worker_is_raised_here_and_a_member_falls_back_to_naive(installed):
    with pytest.raises(ValueError, match="too short"):
        cross_validation([np.ones(3)], "ets", 12, 2, 30)
    values = monthly(80)
    values[30] = np.nan  # AutoETS cannot forecast from a history with a hole: the naive forecast stands in
    split = split_for(values, ids=("x",), seq_length=12, horizon=1)
    member = Statistical("ets", 12)
    idx = split.origins("test")
    out = member(values, split, idx, 1)
    assert set(member.fallback) == {"x"} and member.fallback["x"]  # why, in words
    np.testing.assert_array_equal(out[:, 0], values[split.last_observed(idx)])

def test_a_worker_that_died_is_replaced_and_the_answer_is_the_same(installed):
    ys = [monthly(120)]
    first = cross_validation(ys, "ets", 12, 1, 5)
    for w in offload._pool.workers:
        w._proc.kill()
        w._proc.wait()
    np.testing.assert_array_equal(cross_validation(ys, "ets", 12, 1, 5), first)  # a new worker started


def test_an_exception_that_does_not_pickle_comes_back_as_a_runtime_error(installed):
    with pytest.raises(RuntimeError, match="Unpicklable"):
        offload.run(_raise_unpicklable, key="test")


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling re-calls __init__ with one argument: it cannot be rebuilt
        super().__init__(f"{a}{b}")
        self.lock = __import__("threading").Lock()


def _raise_unpicklable():
    raise Unpicklable("x", "y")


PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from tasks.components.references import Statistical
    from tasks.components.split import build_split
    from tasks.runtime import offload
    from tasks.runtime.runners import warm_up

    offload.install()
    warm_up()
    y = 100 + 8 * np.sin(2 * np.pi * np.arange(120) / 12)
    split = build_split([120], ["a"], seq_length=24)
    Statistical("theta", 12)(y, split, split.origins("test"), 1)
    print("statsforecast" in sys.modules, "numba" in sys.modules)
""")


def test_with_the_worker_statsforecast_never_runs_in_this_process():
    """warm_up and a member's forecasts: statsforecast is not even imported here (its numba code
    cannot hold this process's GIL, and a short run saves its import)."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "False"]


def test_a_second_worker_starts_only_for_a_key_asked_while_the_first_is_busy_and_keys_keep_theirs():
    import threading
    import time

    pool = offload.Pool(size=2)
    try:
        assert pool.call("ets", abs, -3) == 3
        assert pool.call("theta", abs, -4) == 4  # the first worker was idle: no second one
        assert len(pool.workers) == 1
        slow = threading.Thread(target=pool.call, args=("ets", time.sleep, 2.0))
        slow.start()
        while not any(pool._busy.values()):
            time.sleep(0.01)
        assert pool.call("arima", abs, -5) == 5  # asked while "ets" keeps the first one busy
        slow.join()
        assert len(pool.workers) == 2
        assert pool._home["arima"] is pool.workers[1] and pool._home["ets"] is pool._home["theta"] is pool.workers[0]
    finally:
        pool.stop()
    assert all(w.pid is None for w in pool.workers)


def test_a_prestarted_worker_imports_statsforecast_before_it_is_asked_and_serves_the_first_calls():
    pool = offload.Pool(size=2)
    try:
        assert pool.call("x", imported, "statsforecast.models") is False  # a worker started by a call: not yet
    finally:
        pool.stop()
    pool = offload.Pool(size=2)
    try:
        pool.prestart()
        assert len(pool.workers) == 1 and pool.workers[0].pid is not None
        assert pool.call("ets", imported, "statsforecast.models") is True
        assert pool.call("theta", abs, -1) == 1 and len(pool.workers) == 1  # it serves them: no second one
    finally:
        pool.stop()


def test_this_process_has_one_worker_until_a_search_widens_it(monkeypatch):
    done = subprocess.run([sys.executable, "-c", "from tasks.runtime import offload; print(offload._pool.size)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["1"], done.stderr[-2000:]
    pool = offload.Pool(size=1)
    monkeypatch.setattr(offload, "_pool", pool)
    try:
        offload.widen(2)
        offload.widen(1)  # never narrower
        assert pool.size == 2
    finally:
        pool.stop()


@pytest.mark.parametrize("sections, until, fits", [
    ({}, "figures", True),  # the tutorial: its backtest's references
    ({"eval": {"references": "none"}}, "figures", False),
    ({"eval": {"references": "ets"}}, "train", False),  # no backtest in this run
    ({"eval": {"references": "none"}, "search": {"mode": "on"}}, "train", True),  # the search's members
    ({"eval": {"references": "none"}, "search": {"mode": "on", "statistical": "none"}}, "figures", False),
])
def test_a_run_starts_the_statistical_worker_only_where_it_fits_statistical_models(tmp_path, sections, until, fits):
    from tasks.runtime.stages import Run

    run = Run.start(tiny_config(tmp_path, **sections), name="rnn-1", until=until)
    assert run.fits_statistics() is fits


def test_a_worker_stopped_by_an_interrupt_is_not_replaced_by_fits_here(installed, monkeypatch):
    """On SIGINT/SIGTERM the interrupt stops the run's children, the worker among them, and leaves
    through os._exit: the task waiting on the worker must neither fit in this process nor warn
    under the interrupt's one line."""
    import threading

    from tasks.runtime import interrupt

    import time

    done = []
    waiting = threading.Thread(target=lambda: done.append(offload.run(time.sleep, 30, key="ets")), daemon=True)
    waiting.start()
    while not any(offload._pool._busy.values()):
        time.sleep(0.01)
    monkeypatch.setitem(interrupt._state, "stopping", True)
    for w in offload._pool.workers:  # what interrupt.stop_children does to them
        if w.pid is not None:
            w._proc.kill()
    waiting.join(3.0)
    assert waiting.is_alive() and not done  # it waits for the process to leave
    late = threading.Thread(target=lambda: done.append(offload.run(abs, -1, key="theta")), daemon=True)
    late.start()
    late.join(1.0)
    assert late.is_alive() and not done  # no worker starts, nothing is computed here
