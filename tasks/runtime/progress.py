"""The console's live progress display: one line per stage in progress, with how many of its
items (members, buckets, series) are done, what the item in flight is at (an epoch, a series),
the time so far and the time left.

Any stage feeds it, from any thread of the run's process, through four calls (the runtime's
Run.stage and Run.map make the begin/advance/end calls of every stage; a stage adds `item`):

    progress.begin("train", 8)                                   # 8 items start ("models": UNITS)
    progress.item("train", "gru-64 L24 seed 42", 40, 300, "epoch")  # one item in flight: epoch 40 of 300
    progress.advance("train")                                    # one item done
    progress.end("train")                                        # the stage's line goes

An item's own progress counts towards its stage's fraction until it reaches its total (a network
that stops early reports its last epoch as the total). The state lives in this process (a
Tracker): an `item` call for a stage not begun here (in a Dask worker's process) does nothing,
and without a display (a unit test, a flow called from Python) nothing is drawn. Besides the
console, a follower (`follow`) hears of every change: the run's one training-progress artifact
in the Prefect UI (tasks.runtime.publish.TrainingProgress) follows the train stage.

On a terminal the display is rich's Live, redrawn 4 times a second and cleared when the run ends
(the summary block follows it). Elsewhere (output to a file or a pipe) it prints a plain line
for a stage that has run HEARTBEAT seconds since its last line, so a long stage never goes
silent and a short run prints none. Log records meant for the console while it is live go
through `emit` (flows/report.py's console filter), above the display, never through it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

HEARTBEAT = 30.0  # seconds between a long stage's plain lines when the console is not a terminal
UNITS = {"ingest": "buckets", "window": "buckets", "train": "models", "refit": "models", "validate": "members",
         "backtest": "buckets", "predict": "buckets"}  # what a stage's items are, by entry stage; else "entries"


@dataclass
class Item:
    """One item in flight: `done` of `total` (its own unit, e.g. epochs); `expected`: the units it
    is now expected to take in all (a network: at least its early stopping's patience past its best
    epoch so far; 0: not said)."""

    done: float
    total: float
    unit: str
    at: float
    name: str = ""  # how the stage's line names it (default: its key)
    expected: float = 0.0


@dataclass
class Stage:
    """A stage in progress: `done` of `total` items, since `started`, and its items in flight."""

    total: int
    unit: str
    started: float
    done: int = 0
    items: dict[str, Item] = field(default_factory=dict)
    last: str = ""  # the item reported last (what the line shows)
    said: float = 0.0  # when its last plain line was printed
    building: int = 0  # how many of the items are computed (the others are reused)
    work: dict[str, tuple[float, float]] = field(default_factory=dict)  # item key -> (seconds a unit, units planned)

    def fraction(self) -> float:
        """The share done (0..1): of the planned work where the stage has it (`work`), else items
        done plus the unfinished share of those in flight, over the total."""
        if self.work:
            return self._work_fraction()
        partial = sum(i.done / i.total for i in self.items.values() if 0 < i.total and i.done < i.total)
        return min(1.0, (self.done + partial) / self.total) if self.total else 0.0

    def _work_fraction(self) -> float:
        """Work done over the work now expected, in the cost model's seconds (each item's units
        times its seconds a unit): a finished item counts its own units; one not started its
        planned units or, once some have finished, the median units they took if more; one in
        flight that too, and at least its `expected` units and one more than it has done. Items of
        unequal cost (a search's cheap and costly members) so count as what they cost, not one
        each: counted one each, the cheap ones, done first, made the time left look short; and
        the epochs this run's networks take (on an hourly file 110-160, where the cost model plans
        50) soon stand in for the plan's."""
        ran = sorted(it.done for k, it in self.items.items() if k in self.work and 0 < it.total <= it.done)
        typical = ran[len(ran) // 2] if ran else 0.0
        done = whole = 0.0
        for key, (rate, planned) in self.work.items():
            it = self.items.get(key)
            if it is None:
                whole += rate * max(planned, typical)
                continue
            units = it.done if it.done >= it.total else max(planned, typical, it.expected, it.done + 1)
            done += rate * min(it.done, units)
            whole += rate * units
        return min(1.0, done / whole) if whole > 0 else 0.0

    def left(self, now: float) -> float | None:
        """Seconds left at the pace so far; None before 2% is done (no pace to go by yet)."""
        f = self.fraction()
        return (now - self.started) * (1 - f) / f if f >= 0.02 else None


def clock(seconds: float) -> str:
    """1:05, 12:40, 1:02:03."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def describe(name: str, st: Stage, now: float) -> str:
    """A stage's progress in words: "train: 3/8 models; gru-64 L24 seed 42 epoch 40/300; 0:12 so far,
    about 0:35 left"."""
    parts = [f"{st.done}/{st.total} {st.unit}"] if st.total > 1 else []
    current = st.items.get(st.last)
    if current is not None and current.done < current.total:
        parts.append(f"{current.name or st.last} {current.unit} {current.done:g}/{current.total:g}")
    left = st.left(now)
    timing = f"{clock(now - st.started)} so far" + (f", about {clock(left)} left" if left is not None else "")
    return f"{name}: " + "; ".join([*parts, timing])


class Tracker:
    """The stages in progress in this process, and who follows them (`follow`): the console's
    Display reads them, a follower such as the run's training-progress artifact (tasks.runtime.
    publish.TrainingProgress) is told of every change to a stage."""

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}
        self.lock = threading.RLock()
        self.followers: list = []

    def _changed(self, stage: str) -> None:
        with self.lock:
            st = self.stages.get(stage)
            followers = list(self.followers)
        for f in followers:  # outside the lock: a follower may call the Prefect API
            f.changed(stage, st)

    def begin(self, stage: str, total: int, unit: str | None = None, building: int | None = None,
              work: dict[str, tuple[float, float]] | None = None) -> None:
        with self.lock:
            total = max(int(total), 0)
            self.stages[stage] = Stage(total, unit or UNITS.get(stage, "entries"), time.monotonic(),
                                       building=total if building is None else int(building), work=dict(work or {}))
        self._changed(stage)

    def advance(self, stage: str, n: int = 1) -> None:
        with self.lock:
            if (st := self.stages.get(stage)) is None:
                return
            st.done = min(st.total, st.done + n)
        self._changed(stage)

    def item(self, stage: str, name: str, done: float, total: float, unit: str = "", expected: float = 0.0,
             key: str | None = None) -> None:
        with self.lock:
            if (st := self.stages.get(stage)) is None:
                return
            key = key or name
            st.items[key] = Item(float(done), float(total), unit, time.monotonic(), name, float(expected))
            st.last = key
        self._changed(stage)

    def end(self, stage: str) -> None:
        with self.lock:
            if self.stages.pop(stage, None) is None:
                return
        self._changed(stage)

    def snapshot(self) -> list[tuple[str, Stage]]:
        with self.lock:
            return list(self.stages.items())


class Display:
    """The stages in progress (a Tracker's), drawn live on a terminal or as heartbeat lines on `stream`."""

    def __init__(self, tracker: Tracker, stream: IO[str], live: bool) -> None:
        self.tracker, self.stream, self.live = tracker, stream, live
        self._live = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def showing(self) -> list[tuple[str, Stage]]:
        """The stages to draw (the caller holds the tracker's lock): those with items left; a stage
        whose items are all done waits silently for the rest of its wave (a search's statistical
        members for its networks)."""
        return [(name, st) for name, st in self.tracker.stages.items() if not st.total or st.done < st.total]

    def lines(self) -> list[str]:
        now = time.monotonic()
        with self.tracker.lock:
            return [describe(name, st, now) for name, st in self.showing()]

    def _renderable(self):
        from rich.text import Text

        now = time.monotonic()
        with self.tracker.lock:
            rows = [(st.fraction(), describe(name, st, now)) for name, st in self.showing()]
        text = Text()
        for i, (f, words) in enumerate(rows):
            filled = int(round(f * 20))
            text.append("━" * filled, style="green")
            text.append("━" * (20 - filled), style="grey37")
            text.append(f" {words}" + ("\n" if i < len(rows) - 1 else ""))
        return text

    def emit(self, line: str) -> None:
        """Print a log line for the console above the live display (or as it is elsewhere)."""
        if self._live is not None:
            self._live.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=self.stream, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            now = time.monotonic()
            with self.tracker.lock:
                due = [(n, st) for n, st in self.showing() if now - max(st.started, st.said) >= HEARTBEAT]
                for _, st in due:
                    st.said = now
                words = [describe(n, st, now) for n, st in due]
            for w in words:
                print(w, file=self.stream, flush=True)

    def __enter__(self) -> "Display":
        if self.live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, stderr=self.stream is sys.stderr)
            self._live = Live(get_renderable=self._renderable, console=console, refresh_per_second=4,
                              transient=True, redirect_stdout=False, redirect_stderr=False)
            self._live.__enter__()
        else:
            self._ticker = threading.Thread(target=self._beat, name="rnnflow-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
        if self._ticker is not None:
            self._ticker.join(timeout=2)


_tracker = Tracker()  # this process's stages in progress
_active: Display | None = None


@contextlib.contextmanager
def display(stream: IO[str] | None = None, live: bool | None = None) -> Iterator[Display]:
    """Show the run's progress on `stream` (default stderr) while the block runs: live on a
    terminal (`live` None: whether `stream` is one), heartbeat lines elsewhere."""
    global _active
    stream = stream or sys.stderr
    shown = Display(_tracker, stream, stream.isatty() if live is None else live)
    previous, _active = _active, shown
    try:
        with shown:
            yield shown
    finally:
        _active = previous


def abandon() -> str:
    """For a process about to leave at once (a signal handler before os._exit): stop the live
    display's redraws and return the terminal codes that erase it and show the cursor again (rich
    hides it while the display is live), to write before the last line; '' without a live display.
    Does not wait for the redraw thread (a handler must not block on a lock it may hold)."""
    shown = _active
    live = shown._live if shown is not None else None
    if live is None:
        return ""
    shown._stop.set()
    redraws = getattr(live, "_refresh_thread", None)
    if redraws is not None:
        redraws.done.set()  # what rich's own stop sets; its last redraw, if one is under way, ends first
    try:
        erase = live._live_render.position_cursor().segment.text  # back to the display's first line, erased
    except Exception:  # rich changed: at least the current line
        erase = ""
    return f"{erase}\r\x1b[2K\x1b[?25h"


def active() -> Display | None:
    """The console display in use in this process, if any."""
    return _active


@contextlib.contextmanager
def follow(follower) -> Iterator[None]:
    """Tell `follower` (anything with `changed(stage, Stage | None)`; None: the stage ended) of
    every change to a stage while the block runs."""
    with _tracker.lock:
        _tracker.followers.append(follower)
    try:
        yield
    finally:
        with _tracker.lock:
            _tracker.followers.remove(follower)


def begin(stage: str, total: int, unit: str | None = None, building: int | None = None,
          work: dict[str, tuple[float, float]] | None = None) -> None:
    """`stage` starts `total` items (`unit`: what they are, default UNITS' word for the stage), of
    which `building` are computed (the others reused; default all). work: the computed items' planned
    work, {item key: (seconds a unit, units)} (a search's networks: the cost model's seconds an
    epoch and expected epochs), so that its fraction done and time left weigh each item by its cost."""
    _tracker.begin(stage, total, unit, building, work)


def advance(stage: str, n: int = 1) -> None:
    """`n` more items of `stage` are done."""
    _tracker.advance(stage, n)


def item(stage: str, name: str, done: float, total: float, unit: str = "", expected: float = 0.0,
         key: str | None = None) -> None:
    """Item `name` of `stage` is at `done` of `total` `unit` (e.g. epoch 40 of 300; done == total:
    finished), expected to take `expected` units in all (0: not said); `key` (default `name`) is what
    the stage's `work` knows it by. Nothing when `stage` was not begun in this process (a Dask worker's)."""
    _tracker.item(stage, name, done, total, unit, expected, key)


def end(stage: str) -> None:
    """`stage` is done: its line goes."""
    _tracker.end(stage)
