"""Run.map's submission: at most workers x in_flight tasks in flight, the next one submitted as soon
as any one ends (a slow member does not hold back the rest), results in the order of the calls."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from prefect import task
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.runtime.stages import Run


_lock = threading.Lock()
_log: list[tuple[str, str, float]] = []  # (event, name, time)
_running = [0, 0]  # now, most at once
_last_started = threading.Event()


@task(name="wave", cache_policy=None, persist_result=False)
def wave(plan, seconds: float, last: bool = False) -> str:
    """Sleeps `seconds`, or with seconds < 0 until the `last` call has started (at most 60 s)."""
    with _lock:
        _running[0] += 1
        _running[1] = max(_running)
        _log.append(("start", plan.key, time.perf_counter()))
    if last:
        _last_started.set()
    if seconds < 0:
        _last_started.wait(timeout=60)
    else:
        time.sleep(seconds)
    with _lock:
        _running[0] -= 1
        _log.append(("end", plan.key, time.perf_counter()))
    return plan.key


def test_the_next_call_goes_in_when_any_one_ends_and_never_more_than_the_bound():
    _log.clear()
    _running[:] = [0, 0]
    _last_started.clear()
    # a slow first call that ends only once the last has started: waves of the whole batch would
    # hold calls 2 to 4 behind it (and it would time out after 60 s)
    calls = [(wave, SimpleNamespace(key=f"call-{i}"), {"seconds": s, "last": i == 4}, 0.0)
             for i, s in enumerate([-1.0, 0.2, 0.2, 0.2, 0.2])]
    with ThreadPoolTaskRunner(max_workers=8) as runner:  # the runner would run all 5 at once: the bound is Run's
        run = SimpleNamespace(cfg=SimpleNamespace(runner=SimpleNamespace(workers=1, in_flight=2)), runner=runner)
        results = Run._submit_in_waves(run, calls)
    assert results == [f"call-{i}" for i in range(5)]
    assert _running[1] == 2  # workers x in_flight
    when = {(event, name): t for event, name, t in _log}
    slow_end = when[("end", "call-0")]
    for i in (2, 3, 4):  # each started while the slow first call was still running
        assert when[("start", f"call-{i}")] < slow_end, _log
    assert _last_started.is_set()


def test_a_time_limit_submits_no_call_after_it_and_always_the_first():
    """stop_at: calls not yet submitted when it passes are left out (None), the first always runs;
    a call of another job without a limit still goes in (a search's statistical members)."""
    _log.clear()
    _running[:] = [0, 0]
    _last_started.set()
    past = time.time() - 1
    calls = [(wave, SimpleNamespace(key=f"late-{i}"), {"seconds": 0.05}, past) for i in range(3)]
    calls.append((wave, SimpleNamespace(key="free"), {"seconds": 0.05}, 0.0))
    with ThreadPoolTaskRunner(max_workers=2) as runner:
        run = SimpleNamespace(cfg=SimpleNamespace(runner=SimpleNamespace(workers=2, in_flight=2)), runner=runner)
        results = Run._submit_in_waves(run, calls)
    assert results == ["late-0", None, None, "free"]


def test_jobs_in_one_wave_take_turns():
    from tasks.runtime.stages import turns

    assert turns([3, 2]) == [0, 3, 1, 4, 2]  # a0 b0 a1 b1 a2
    assert turns([1, 3]) == [0, 1, 2, 3]
    assert turns([2, 0, 1]) == [0, 2, 1]
    assert turns([]) == []
