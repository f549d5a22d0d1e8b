"""What a search costs before it runs, and a plan that fits it into a time budget (pure: no torch, no Prefect).

The cost of a network member is its epochs times the cost of an epoch:

    epoch = steps x step + validation
    steps = ceil(min(training windows, steps_per_epoch x batch) / batch)
    step  = recurrent steps read x (DISPATCH[cell] + WINDOW[cell] x batch) x width(hidden) + STEP_FIXED
    validation = validation windows read x recurrent steps x FORWARD[cell] x width(hidden)

so it grows with the windows an epoch reads (never all of a long series: steps_per_epoch), the
points the recurrent layers read (never a whole long season: recurrent_steps) and the size of the
network, and not with the season. A statistical member costs a fit per series and range and a
forecast per origin, each growing with the series' length (`statistical_seconds`).

The constants are seconds on one core of the project's reference machine (a 2-core AMD EPYC VM),
measured with torch's CPU kernels at one thread (`benchmarks/cost.py --calibrate` prints them);
they only rank and budget members, the time limit itself is kept by the training loop's deadline
(tasks.components.fit). A plan is a pure function of the data's shape, the members and the
budget: the same file and settings always train the same members.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tasks.components.specs import MIN_EPOCHS

# per recurrent step of one optimisation step (forward + backward), seconds: a fixed part per step
# (kernel dispatch) and a part per window of the batch; hidden width 64 (width() scales others)
DISPATCH = {"rnn": 40e-6, "gru": 250e-6, "lstm": 80e-6}
WINDOW = {"rnn": 0.6e-6, "gru": 1.6e-6, "lstm": 2.0e-6}
FORWARD = {"rnn": 0.15e-6, "gru": 0.5e-6, "lstm": 0.6e-6}  # per window and recurrent step, inference
STEP_FIXED = 0.6e-3  # loss, Adam, the weight average, Python
EPOCH_FIXED = 2e-3  # the epoch's bookkeeping: shuffling, the best weights, a log line
# statistical members, seconds per 1,000 points of history: a fit (AutoETS's grows with the season:
# it tries seasonal models with m states; 3.9 s for AutoETS(24) on 2,600 hourly points here), the
# MSTL decomposition per season, and one forecast per origin (a forward pass over the history)
FIT_ETS = (0.07, 0.06)  # (base, per step of season)
FIT = {"theta": 0.75, "arima": 2.0, "snaive": 0.001}
FIT_MSTL = 0.16
FORECAST = {"ets": 0.00013, "theta": 0.0029, "arima": 0.001, "snaive": 0.00002}


def width(hidden: int) -> float:
    """How a step's cost scales with the hidden size (64: 1); measured near linear below 128 on CPU."""
    return max(0.25, hidden / 64)


@dataclass(frozen=True)
class NetworkCost:
    """A network member as the cost model sees it.

    windows, val_windows: its training and (early stopping) validation windows over all series;
    read: the recurrent steps it reads per window (min(seq_length, recurrent_steps)); epochs: its
    epoch cap; patience: early stopping's (0: none).
    """

    label: str
    cell: str
    hidden: int
    read: int
    windows: int
    val_windows: int
    batch: int = 32
    steps_per_epoch: int = 0
    epochs: int = 300
    patience: int = 20

    def steps(self) -> int:
        """Optimisation steps in one epoch."""
        seen = min(self.windows, self.steps_per_epoch * self.batch) if self.steps_per_epoch else self.windows
        return max(1, math.ceil(seen / self.batch))

    def epoch_seconds(self) -> float:
        """Seconds of one epoch on one core of the reference machine."""
        cell = self.cell if self.cell in DISPATCH else "gru"
        step = self.read * (DISPATCH[cell] + WINDOW[cell] * self.batch) * width(self.hidden) + STEP_FIXED
        val = self.val_windows * self.read * FORWARD[cell] * width(self.hidden)
        return self.steps() * step + val + EPOCH_FIXED

    def expected_epochs(self) -> int:
        """The epochs a plan counts on: early stopping's patience past a best epoch (taken as
        EXPECTED_BEST), at most the cap; the cap itself without early stopping."""
        return min(self.epochs, self.patience + EXPECTED_BEST) if self.patience else self.epochs

    def seconds(self, epochs: int | None = None) -> float:
        """Seconds of `epochs` epochs (default: expected_epochs)."""
        return self.epoch_seconds() * (self.expected_epochs() if epochs is None else epochs)


EXPECTED_BEST = 30  # a typical best epoch on the project's quality panel (median ~20, long tail)


def statistical_seconds(name: str, lengths: list[int] | tuple[int, ...], origins: int, fits: int = 1,
                        season: int | None = None, mstl: tuple[int, ...] = ()) -> float:
    """Seconds of a statistical member over series of `lengths` (points each): `fits` fits per
    series and a forecast per origin (`origins` per series), each growing with the series' length;
    with `mstl`, the decomposition on every fit and a trend forecaster without a season. A search
    fits each member three times a series: before its validation, its calibration and its test
    origins (the last shared with the reference of its name)."""
    m = 1 if mstl else (season or 1)
    per_fit = FIT_ETS[0] + FIT_ETS[1] * m if name == "ets" else FIT.get(name, 0.5)
    if mstl and name != "snaive":
        per_fit += FIT_MSTL * len(mstl)
    per_origin = FORECAST.get(name, 0.001)
    return sum(n / 1000 * (fits * per_fit + origins * per_origin) for n in lengths)


@dataclass
class Plan:
    """Which members a run trains within its budget, and what the rest costs.

    kept, skipped: member positions (in the order given); epochs: the epoch cap of each kept
    member (its own cap unless the budget lowers it); estimate: the run's estimated seconds
    (wall, `workers` cores); budget: the seconds it had; fixed: the estimated seconds of
    everything but the networks (statistical members, backtest, the stages' overhead).
    """

    budget: float
    fixed: float
    estimate: float
    kept: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    epochs: dict[int, int] = field(default_factory=dict)

    @property
    def binds(self) -> bool:
        """Did the budget skip a member or lower an epoch cap?"""
        return bool(self.skipped) or any(self.epochs[i] < cap for i, cap in self.caps.items())

    caps: dict[int, int] = field(default_factory=dict)  # each kept member's own epoch cap


def plan(networks: list[NetworkCost], priority: list[int], budget: float, fixed: float, workers: int = 1) -> Plan:
    """Fit `networks` into `budget` seconds of wall time, `fixed` of which go to everything else,
    the networks sharing `workers` cores.

    Members are taken in `priority` order (their positions; a search puts every configuration's
    first seed before any second seed) while their expected cost (NetworkCost.seconds) fits what
    is left; a member that does not fit even at MIN_EPOCHS is skipped, as is every later one that
    does not fit. If the kept members' expected cost still exceeds the budget, their epoch caps are
    lowered in proportion (never below MIN_EPOCHS). Deterministic: no clock is read.
    """
    room = max(0.0, budget - fixed) * max(1, workers)  # core-seconds for the networks
    out = Plan(budget=budget, fixed=fixed, estimate=fixed)
    used = 0.0
    for i in priority:
        n = networks[i]
        floor = n.seconds(min(n.epochs, MIN_EPOCHS))
        if used + floor > room and out.kept:
            out.skipped.append(i)
            continue
        out.kept.append(i)
        out.caps[i] = n.epochs
        used += n.seconds()
    scale = min(1.0, room / used) if used > 0 else 1.0
    for i in out.kept:
        n = networks[i]
        if scale < 1.0:
            out.epochs[i] = max(min(n.epochs, MIN_EPOCHS), int(n.expected_epochs() * scale))
        else:
            out.epochs[i] = n.epochs
    spent = sum(networks[i].seconds(min(networks[i].expected_epochs(), out.epochs[i])) for i in out.kept)
    out.estimate = fixed + spent / max(1, workers)
    return out


STAGES_FIXED = 8.0  # seconds of a run beside its members: stage orchestration, windows, ensemble, backtest, figures
HEADROOM = 3.0  # the default time limit: the whole search's estimate times this, plus SLACK
SLACK = 60.0


def auto_time_limit(estimate: float) -> float:
    """The default time limit of a run on a file whose whole search the cost model puts at
    `estimate` seconds: HEADROOM times it plus SLACK, in whole seconds. The data sets it through
    the work it implies (which, past tasks.components.search.SMALL training windows, grows with
    the data by the epoch's fixed work, never with a season); the limit binds only where the
    machine runs much slower than the model expects (a loaded machine), and then the deadline
    keeps the run within it."""
    return float(math.ceil(HEADROOM * estimate + SLACK))


def search_plan(networks: list[NetworkCost], order: list[int], limit: float, workers: int, validation: float,
                test: float) -> tuple[Plan, float]:
    """A search's plan within `limit` seconds and when its networks must have stopped (seconds
    from now). validation: the statistical members' seconds (their validation, calibration and
    test forecasts, made in the networks' wave, taking turns with them on `workers`); test: the
    statistical seconds of the backtest (references that are no member), which comes after.
    Statistical work is counted whole, not shared over the workers (in a thread it holds Python's
    GIL; in the statistical worker process it takes a core from the networks); the networks'
    deadline leaves room for it and for the stages after the wave."""
    fixed = STAGES_FIXED + test + validation
    out = plan(networks, order, limit, fixed, workers)
    return out, max(1.0, limit - STAGES_FIXED / 2 - test - validation)
