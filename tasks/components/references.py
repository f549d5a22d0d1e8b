"""Statistical reference forecasters, scored on the backtest's own origins and leads (pure).

    ets     AutoETS: the exponential smoothing state space model (error, trend, season) chosen by
            AICc, Hyndman & Khandakar (2008), "Automatic time series forecasting: the forecast
            package for R", J. Stat. Software 27(3); Hyndman, Koehler, Ord & Snyder (2008),
            "Forecasting with Exponential Smoothing: the State Space Approach", Springer.
    theta   AutoTheta: the theta method of Assimakopoulos & Nikolopoulos (2000), Int. J. Forecasting
            16(4), in its optimised state space forms (standard, optimised, dynamic standard and
            dynamic optimised), chosen by MSE, Fiorucci et al. (2016), Int. J. Forecasting 32(4);
            seasonally adjusted by classical decomposition when a seasonality test says so.
    arima   AutoARIMA: the stepwise ARIMA search of Hyndman & Khandakar (2008).

All three come from Nixtla's statsforecast (`StatsForecast.cross_validation`), one series at a
time, each series with its own model. Every test origin of a series is one cross-validation window
with `step_size=1`: its cutoff is the origin's last observed point T = o + L - 1 and its h = H
targets are exactly the backtest's targets values[T+1 .. T+H] (checked, not assumed).

Refit policy: the same as the network's. With no refit (eval.refit_every 0, the default) each
series' model is fitted once, on that series' points up to its first test origin's last observed
point, and then applied to every later origin with its parameters fixed: statsforecast's
`refit=False` runs the fitted model's `forward` over the history up to each cutoff, so a forecast
reads only the values up to its own origin, as the network reads only its window. With
refit_every K the models are refitted every K origins (`refit=K`), as the network is retrained
before each block of K origins. Refitting at every origin (`refit=True`) was measured at 20-80x
the cost (AutoETS on AirPassengers, 25 origins, H=12: 4.0 s instead of 0.21 s; on the 1,020-point
sine, 200 origins: 12.5 s instead of 0.15 s, for the same test MSE, 1.128e-5; AutoTheta 20.9 s
instead of 0.47 s, 4.78e-4 instead of 4.76e-4).

A model that raises (AutoETS refuses series of 4 points or fewer), or forecasts a value that is
not finite, on a series is replaced on that series by the naive forecast (statsforecast's own
`fallback_model` idea), logged and recorded under "fallback" with the reason, so one awkward
series never leaves a reference undefined. Series with the same number of test origins share
one cross_validation call (each still gets its own model), which roughly halves the per-series
cost (AutoETS on 80-point series: 8-13 ms instead of 21 ms a series; AutoTheta 4-6 ms).

Where it runs: every statsforecast call goes through `_computed`, which a local run points at a
worker process (tasks/runtime/offload.py; its numba code holds the GIL).
One concern, about 530 lines: the references and the statistical members are the same models,
fits and refit policy.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

import numpy as np
import pandas as pd

from tasks.components.split import Split

log = logging.getLogger(__name__)

# How the statsforecast work below runs: None, in this thread; else a function taking (fn, *args,
# key=the model's name) that returns fn(*args) computed elsewhere, to the bit (tasks.runtime.offload
# installs its worker processes for a local run that fits statistical models: statsforecast's
# numba code holds the GIL a fit long, which stalled the networks training in the other threads).
offload = None


def _computed(fn, name: str, *args):
    """fn(name, *args) (name: the model's), where `offload` says."""
    return fn(name, *args) if offload is None else offload(fn, name, *args, key=name)

REFERENCES = ("ets", "theta", "arima")
MEMBERS = (*REFERENCES, "snaive")  # what a search may combine with its networks (Statistical)
LABELS = {"ets": "AutoETS", "theta": "AutoTheta", "arima": "AutoARIMA", "snaive": "seasonal naive"}


def label(name: str, season: int | None = None, mstl: tuple[int, ...] = ()) -> str:
    """How logs, the leaderboard and the report name a statistical forecaster: LABELS, except that
    "snaive" without a season (`season` None, 0 or 1) is the naive forecast it then makes, and a
    forecaster on sub-daily data's seasons (`mstl`: mstl_seasons) is "MSTL+AutoETS"."""
    if name == "snaive":
        return "naive" if not (season and season > 1) else LABELS[name]
    return f"MSTL+{LABELS[name]}" if mstl else LABELS[name]


ETS_SEASON_LIMIT = 24  # statsforecast's AutoETS (as R's ets) fits no season longer than this


def mstl_seasons(frequency: str | None, seasons, season_length: int | None = None) -> tuple[int, ...]:
    """The seasons the statistical forecasters remove by MSTL before their trend forecaster, or ()
    for a plain AutoETS / AutoTheta / AutoARIMA with the main season.

    Sub-daily data (a fixed step under a day) has several seasons: a day (24 hourly, 48
    half-hourly, 1,440 one-minute steps) and a week. AutoETS fits no season over 24 steps, and
    AutoTheta's seasonality test and classical decomposition run again at every origin; the
    field's answer to long and multiple seasons is a decomposition that removes them, with a
    non-seasonal forecaster on what is left (Hyndman & Athanasopoulos, "Forecasting: principles
    and practice", 3rd ed., section 12.1; statsforecast's MSTL). So sub-daily data with two
    seasons, or one longer than ETS_SEASON_LIMIT, gets MSTL over the seasons of its calendar
    (`seasons`: those its shortest series holds two cycles of). An explicit `season_length`
    (--season-length) is the season itself: a plain model with it. Other data keeps the plain
    models (a weekly series' 52: AutoETS without a season, AutoTheta deseasonalised by 52).
    """
    from tasks.components.frequency import is_subdaily, offset_of

    if season_length or not seasons or frequency is None:
        return ()
    try:
        subdaily = is_subdaily(offset_of(frequency))
    except Exception:  # noqa: BLE001 (an integer step or an unknown alias: not sub-daily)
        return ()
    if subdaily and (len(seasons) > 1 or int(seasons[0]) > ETS_SEASON_LIMIT):
        return tuple(int(m) for m in seasons)
    return ()


def policy_words(season: int | None, mstl: tuple[int, ...]) -> str:
    """The season policy of the statistical forecasters in words, for the run's summary."""
    if mstl:
        return (f"MSTL removes the season(s) {', '.join(map(str, mstl))}, then AutoETS without a season forecasts "
                f"the rest (AutoTheta, which then forecasts as it does at ten times the cost, only if asked for); "
                f"seasonal naive repeats the last {mstl[0]} steps")
    if season and season > ETS_SEASON_LIMIT:
        return (f"season {season}: AutoETS fits none over {ETS_SEASON_LIMIT} steps (statsforecast's limit), "
                f"AutoTheta deseasonalises by {season}")
    return f"season {season}" if season and season > 1 else "no season"


def reference_model(name: str, season: int | None):
    """A fresh statsforecast model for `name` (one of MEMBERS) with season length `season` (1: none);
    "snaive" is statsforecast's SeasonalNaive (Naive without a season).

    Raises ValueError for a name that is not one of MEMBERS.
    """
    check_name(name)
    return _statsforecast_model(name, season)


def _statsforecast_model(name: str, season: int | None, **kwargs):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, Naive, SeasonalNaive

    m = int(season) if season and season > 1 else 1
    makers = {"ets": lambda: AutoETS(season_length=m, **kwargs),
              "theta": lambda: AutoTheta(season_length=m, **kwargs),
              "arima": lambda: AutoARIMA(season_length=m, **kwargs),
              "snaive": lambda: SeasonalNaive(season_length=m) if m > 1 else Naive()}
    return makers[name]()


def check_name(name: str) -> None:
    """ValueError unless `name` is one of MEMBERS. Checked without importing statsforecast (about
    5 s on this project's 2-core machine), so a process that only names members (the flow's own
    process when the members run on Dask workers, a model file being read) never pays for it."""
    if name not in MEMBERS:
        raise ValueError(f"unknown reference forecaster {name!r} (known: {', '.join(MEMBERS)})")


def refit_policy(refit_every: int) -> str:
    """The refit policy in words, as metrics.json records it."""
    if refit_every:
        return (f"refitted every {refit_every} origin(s) on the history up to that origin (statsforecast "
                f"cross_validation refit={refit_every}), as the network is retrained")
    return ("fitted once per series on the history up to its first test origin, then applied to every later "
            "origin with its parameters fixed (statsforecast cross_validation refit=False), as the network is "
            "trained once")


def cross_validation(ys: list[np.ndarray], name: str, season: int | None, steps: int, n_windows: int,
                     refit_every: int = 0, mstl: tuple[int, ...] = ()) -> np.ndarray:
    """Forecasts of the last `n_windows` one-step-apart windows of each series: (n_series, n_windows, steps).

    ys: each series up to its last window's last target, (n_i,) float; in series i, window w has
    its cutoff (last observed index) at n_i - steps - n_windows + w and forecasts
    y[cutoff+1 .. cutoff+steps]. One model per series (statsforecast fits each series on its own;
    several series in one call only save its per-call overhead, ~10 ms). mstl: statsforecast's
    MSTL over these seasons with `name` as its trend forecaster (what a refitting backtest of
    sub-daily data uses; without refits, MSTLForecaster). Raises whatever a model raises
    (ValueError, NotImplementedError for too few points, ...), and ValueError when statsforecast's
    windows are not these.
    """
    return _computed(_cross_validation, name, ys, season, steps, n_windows, refit_every, mstl)


def _cross_validation(name: str, ys: list[np.ndarray], season: int | None, steps: int, n_windows: int,
                      refit_every: int = 0, mstl: tuple[int, ...] = ()) -> np.ndarray:
    """cross_validation, computed here."""
    from statsforecast import StatsForecast

    lengths = np.array([len(y) for y in ys])
    df = pd.DataFrame({"unique_id": np.repeat(np.arange(len(ys)), lengths),
                       "ds": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]),
                       "y": np.concatenate([np.asarray(y, dtype=float) for y in ys])})
    if mstl:
        from statsforecast.models import MSTL

        trend = _statsforecast_model("ets", None, model="ZZN") if name == "ets" else reference_model(name, None)
        model = MSTL(season_length=list(mstl), trend_forecaster=trend)
    else:
        model = reference_model(name, season)
    sf = StatsForecast(models=[model], freq=1, n_jobs=1)
    cv = sf.cross_validation(df=df, h=steps, n_windows=n_windows, step_size=1, refit=refit_every or False)
    cv = cv.sort_values(["unique_id", "cutoff", "ds"], kind="stable")
    cutoffs = lengths[:, None] - steps - n_windows + np.arange(n_windows)[None, :]  # (n_series, n_windows)
    expect = np.concatenate([np.repeat(np.arange(len(ys)), n_windows * steps)[:, None],
                             (cutoffs[:, :, None] + np.arange(1, steps + 1)).reshape(-1, 1)], axis=1)
    got = np.stack([cv["unique_id"].to_numpy(np.int64), cv["ds"].to_numpy(np.int64)], axis=1) if len(cv) else None
    if got is None or got.shape != expect.shape or not np.array_equal(got, expect):
        raise ValueError(f"statsforecast's windows are not the backtest's ({len(cv)} rows for {len(ys)} series x "
                         f"{n_windows} origins x {steps} leads)")
    column = next(c for c in cv.columns if c not in ("unique_id", "ds", "cutoff", "y"))
    return cv[column].to_numpy(float).reshape(len(ys), n_windows, steps)


def reference_forecasts(values: np.ndarray, split: Split, idx: np.ndarray, steps: int, season: int | None,
                        names: tuple[str, ...], refit_every: int = 0, mstl: tuple[int, ...] = (),
                        given: dict[str, tuple[np.ndarray, dict[str, str]]] | None = None
                        ) -> tuple[dict[str, np.ndarray], dict]:
    """Each reference's forecasts from the origins `idx`, in the series' units: ({name: (n, steps)}, info).

    values: every series end to end (n_total,); idx: origins (global window starts, as
    split.origins("test"), any order); season: the main season length in steps (None: none);
    mstl: the seasons MSTL removes first (mstl_seasons; () for the plain models).
    A series' forecasts use only its own values up to each origin's last observed point (see the
    module docstring for the refit policy). given: forecasts already made of these origins by a
    statistical member of the same name and policy ({name: (forecasts (n, steps), its fallbacks)}:
    a hybrid's, in the same backtest), used as they are instead of forecasting again.
    info: {"names", "season_length", "mstl", "refit", "fallback": {name: {series_id: reason}}}.
    Raises ValueError for an unknown name.
    """
    idx = np.asarray(idx, dtype=np.int64)
    given = given or {}
    for name in names:
        check_name(name)  # an unknown name fails here, not as a fallback
    out = {name: np.full((len(idx), steps), np.nan) for name in names}
    fallback: dict[str, dict[str, str]] = {name: {} for name in names}
    todo = []
    for name in names:
        if name in given:
            out[name], fallback[name] = given[name][0], dict(given[name][1])
        elif mstl and not refit_every:  # decomposed once per series (MSTLForecaster), like the hybrid's members
            member = Statistical(name, season, mstl)
            out[name], fallback[name] = member(values, split, idx, steps), dict(member.fallback)
        else:
            todo.append(name)
    last = split.last_observed(idx)
    k = split.series_index(idx)
    series = []  # (series position, its rows of idx, first cutoff, n_windows)
    for j in np.unique(k):
        rows = np.flatnonzero(k == j)
        first = int(last[rows].min())
        series.append((int(j), rows, first, int(last[rows].max()) - first + 1))
    # numpy's error state is per thread (warnings.catch_warnings is not): a flat series makes
    # statsmodels' seasonality test in AutoTheta divide 0 by 0, which it handles.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for n_windows in sorted({s[3] for s in series}) if todo else ():
            group = [s for s in series if s[3] == n_windows]
            ys = [values[split.series[j].offset : first + n_windows - 1 + steps + 1] for j, _, first, _ in group]
            ids = [split.ids[j] for j, *_ in group]
            for name in todo:
                preds = _forecast_each(ys, name, season, steps, n_windows, refit_every, ids, fallback[name], mstl)
                for (_, rows, first, _), pred in zip(group, preds):  # naive where the model fell back
                    out[name][rows] = values[last[rows]][:, None] if pred is None else pred[last[rows] - first]
    info = {"names": list(names), "season_length": int(season) if season and season > 1 else None,
            "mstl": list(mstl), "refit": refit_policy(refit_every), "fallback": {n: f for n, f in fallback.items() if f}}
    return out, info


def _forecast_each(ys: list[np.ndarray], name: str, season: int | None, steps: int, n_windows: int,
                   refit_every: int, ids: list[str], fallback: dict[str, str], mstl: tuple[int, ...] = ()
                   ) -> list[np.ndarray | None]:
    """Every series' (n_windows, steps) forecasts in one call, or series by series when that call
    fails; None (with the reason in `fallback` and a warning) for a series whose model fails or
    forecasts a value that is not finite."""
    reasons: list[str | None] = [None] * len(ys)
    try:
        preds: list[np.ndarray | None] = list(cross_validation(ys, name, season, steps, n_windows, refit_every, mstl))
    except Exception as exc:  # noqa: BLE001 (any model failure: the naive forecast, recorded)
        if len(ys) > 1:  # find the series whose model failed, one at a time
            return [p for y, sid in zip(ys, ids)
                    for p in _forecast_each([y], name, season, steps, n_windows, refit_every, [sid], fallback, mstl)]
        preds, reasons = [None], [f"{type(exc).__name__}: {exc}"[:200]]
    out = []
    for sid, pred, reason in zip(ids, preds, reasons):
        if pred is not None and not np.isfinite(pred).all():
            reason = "a forecast that is not finite"
        if reason:
            log.warning("%s failed on series %r (%s); its naive forecast stands in", label(name, season, mstl), sid,
                        reason)
            fallback[sid] = reason
            pred = None
        out.append(pred)
    return out


class Statistical:
    """A reference forecaster as a member of a search's ensemble: ranked on the validation range
    beside the networks and, when among the best, combined with them (the hybrid of
    tasks/components/ensemble.py). Callable as a backtest Predict.

    Fitted per series on its history up to the earliest origin it is asked to forecast from (the
    last observed point of that origin), then applied with its parameters fixed to the history up
    to each origin (the fitted model's `forward`): the references' own policy (statsforecast's
    cross_validation with refit=False; the same forecasts, checked by the tests). Asked for the
    validation origins, it is fitted on the training range, and its validation score is a true
    out-of-sample one; for the calibration origins, on everything before them, so its
    calibration residuals are as out-of-sample as its test ones; for the test origins, on
    everything before the test range (it then forecasts exactly as the reference of that name);
    for the future, on all of each series. No forecast reads a value after its origin.

    mstl: the seasons of sub-daily data (`mstl_seasons`): the model is then statsforecast's MSTL
    with this forecaster as its trend forecaster (MSTLForecaster). The fits of one process are
    kept (`fitted`): the validation stage's fit before the calibration origins serves the
    backtest's calibration again, and a fit serves every member that asks for it.

    The idea of combining statistical and learned forecasters: Smyl (2020), "A hybrid method of
    exponential smoothing and recurrent neural networks for time series forecasting", Int. J.
    Forecasting 36(1) (the M4 winner), and the M4 combinations of Makridakis et al. (2020).
    """

    def __init__(self, name: str, season: int | None, mstl: tuple[int, ...] = ()):
        check_name(name)  # an unknown name fails here
        self.name = name
        self.season = int(season) if season and season > 1 else None
        self.mstl = tuple(int(m) for m in mstl) if name != "snaive" else ()
        self.fallback: dict[str, str] = {}  # series id -> why its naive forecast stood in (the last call's)
        self.made: dict[str, dict[int, np.ndarray]] = {}  # series id -> {last observed (local): (steps,)}: `knowing`
        self.made_fallback: dict[str, str] = {}  # series id -> why the naive forecast stood in, in what it made

    def knowing(self, frame) -> "Statistical":
        """Itself, told the forecasts it made already (a DataFrame: series_id, last, lead, forecast,
        as its validate entry keeps them), which a later call for those origins returns instead of
        fitting and forecasting again: the same fit, history and origins give the same forecasts."""
        for (sid, last), rows in frame.sort_values("lead").groupby(["series_id", "last"], sort=False):
            self.made.setdefault(str(sid), {})[int(last)] = rows["forecast"].to_numpy(float)
        if "fallback" in frame:
            self.made_fallback.update({str(sid): str(r) for sid, r in zip(frame["series_id"], frame["fallback"]) if r})
        return self

    def _known(self, sid: str, local_last: np.ndarray, steps: int) -> np.ndarray | None:
        made = self.made.get(sid)
        if not made or any(int(t) not in made or len(made[int(t)]) < steps for t in local_last):
            return None
        return np.stack([made[int(t)][:steps] for t in local_last])

    def __repr__(self) -> str:
        more = f", mstl={self.mstl}" if self.mstl else ""
        return f"Statistical({self.name!r}, season={self.season}{more})"

    @property
    def label(self) -> str:
        """How logs and reports name it: "AutoETS", "MSTL+AutoETS", "seasonal naive", "naive"."""
        return label(self.name, self.season, self.mstl)

    def __call__(self, values: np.ndarray, split: Split, idx: np.ndarray, steps: int) -> np.ndarray:
        """Forecasts of `steps` values after each origin `idx` (global window starts of `split`),
        in the series' own units: (n, steps). A series whose model raises or forecasts a value
        that is not finite gets the naive forecast (logged, and named in `fallback`), as the
        references do."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), steps))
        last, k = split.last_observed(idx), split.series_index(idx)
        self.fallback = {}
        todo = []  # (its rows of idx, series id, its history up to its last origin, fit length, origins' last points)
        for j in np.unique(k):
            rows, s = np.flatnonzero(k == j), split.series[int(j)]
            known = self._known(s.series_id, last[rows] - s.offset, steps) if self.made else None
            if known is not None:
                out[rows] = known
                if s.series_id in self.made_fallback:
                    self.fallback[s.series_id] = self.made_fallback[s.series_id]
                continue
            local = last[rows] - s.offset
            todo.append((rows, s.series_id, np.asarray(values[s.offset : s.offset + int(local.max()) + 1], dtype=float),
                         int(local.min()) + 1, local))
        jobs = [t[2:] for t in todo]
        made = _computed(_forecast_series, self.name, self.season, self.mstl, jobs, steps) if todo else []
        for (rows, sid, *_), (pred, reason) in zip(todo, made):
            if reason is not None:
                log.warning("%s (ensemble member) failed on series %r (%s); its naive forecast stands in",
                            self.label, sid, reason)
                self.fallback[sid] = reason
                pred = np.repeat(values[last[rows]][:, None], steps, axis=1)
            out[rows] = pred
        return out

    def table(self, values: np.ndarray, split: Split, parts: tuple[str, ...] = ("cal", "test")):
        """Its forecasts of every origin of `parts` of `split` as a DataFrame (series_id, part,
        last: the origin's last observed point local to its series, lead, forecast, fallback: why
        the naive forecast stood in, or ""): what `knowing` reads back (the validate entry keeps it)."""
        import pandas as pd

        frames = []
        for part in parts:
            idx = split.origins(part)
            if not len(idx):
                continue
            pred = self(values, split, idx, split.horizon)
            sid = np.array(split.ids, dtype=object)[split.series_index(idx)]
            n, steps = pred.shape
            frames.append(pd.DataFrame({
                "series_id": np.repeat(sid, steps).astype(str), "part": part,
                "last": np.repeat(split.local(split.last_observed(idx)), steps),
                "lead": np.tile(np.arange(1, steps + 1), n), "forecast": pred.ravel(),
                "fallback": [self.fallback.get(x, "") for x in np.repeat(sid, steps)]}))
        return pd.concat(frames, ignore_index=True) if frames else None


def _forecast_series(name: str, season: int | None, mstl: tuple[int, ...],
                     jobs: list[tuple[np.ndarray, int, np.ndarray]], steps: int
                     ) -> list[tuple[np.ndarray | None, str | None]]:
    """A statistical member's forecasts of several series (Statistical.__call__'s work): for each
    job (y: the series up to its last origin's last observed point, (n,) float; fit: how many of
    its first points the model is fitted on; last: each origin's last observed point, local to
    the series), (forecasts (len(last), steps), None), or (None, why) when its model raised or
    forecast a value that is not finite. A module-level function of arrays, so that it runs as
    well in the statistical worker (tasks.runtime.offload) as here."""
    out = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # see reference_forecasts
        for y, fit, last in jobs:
            try:
                model = fitted(name, season, mstl, y[:fit])
                pred = np.stack([np.asarray(model.forward(y=y[: t + 1], h=steps)["mean"], dtype=float)
                                 for t in last])
                if not np.isfinite(pred).all():
                    raise ValueError("a forecast that is not finite")
                out.append((pred, None))
            except Exception as exc:  # noqa: BLE001 (any model failure: the naive forecast, logged by the caller)
                out.append((None, f"{type(exc).__name__}: {exc}"[:200]))
    return out


class MSTLForecaster:
    """MSTL (Bandara, Hyndman & Bergmeir 2021, "MSTL: a seasonal-trend decomposition algorithm for
    time series with multiple seasonal patterns"; statsforecast's `MSTL`) applied with its
    parameters fixed, as a reference with refit=False is: the seasonal components are estimated
    once, on the fit's history, and continued past it as MSTL's own forecast continues them (each
    component's last cycle repeated); the trend forecaster (AutoETS without a season, AutoTheta
    or AutoARIMA with season 1) runs `forward` over the series less those components.

    statsforecast's MSTL.forward decomposes the history again at every origin (an STL fit per
    origin: about a second for 2,600 hourly points here), which would make a backtest's cost grow
    with origins x points; here the decomposition costs one fit per series and range, shared by
    every trend forecaster (`decomposition`).

    seasonal: (n_fit, len(periods)) the fitted seasonal components, periods ascending.
    """

    def __init__(self, trend, seasonal: np.ndarray, periods: tuple[int, ...]):
        self.trend = trend
        self.seasonal = np.asarray(seasonal, dtype=float)
        self.periods = periods
        self.n_fit = len(self.seasonal)

    def seasonal_at(self, positions: np.ndarray) -> np.ndarray:
        """The sum of the seasonal components at series positions (fitted inside the fit range,
        continued past it): (len(positions),)."""
        pos = np.asarray(positions, dtype=np.int64)
        out = np.zeros(len(pos))
        for j, p in enumerate(self.periods):
            src = np.where(pos < self.n_fit, pos, self.n_fit - p + (pos - self.n_fit) % p)
            out += self.seasonal[src, j]
        return out

    def forward(self, y: np.ndarray, h: int) -> dict:
        """statsforecast's forward: {"mean": (h,)} after the last point of `y` (the series from its start)."""
        n = len(y)
        adjusted = y - self.seasonal_at(np.arange(n))
        mean = np.asarray(self.trend.forward(y=adjusted, h=h)["mean"], dtype=float)
        return {"mean": mean + self.seasonal_at(np.arange(n, n + h))}


_FITS: OrderedDict = OrderedDict()  # key -> (value, bytes)
_FITS_LOCK = threading.Lock()
FITS_BYTES = 64 << 20  # what the kept fits may hold per process, least recently used dropped first


def _kept(key: tuple, make, size: int):
    """The value kept under `key`, made (outside the lock) and kept if new. `size`: its bytes, about
    (a fitted model holds a few arrays as long as its history); at most FITS_BYTES are kept, so
    memory stays bounded however many series a process forecasts."""
    with _FITS_LOCK:
        if key in _FITS:
            _FITS.move_to_end(key)
            return _FITS[key][0]
    value = make()
    with _FITS_LOCK:
        _FITS[key] = (value, size)
        total = sum(b for _, b in _FITS.values())
        while total > FITS_BYTES and len(_FITS) > 1:
            total -= _FITS.popitem(last=False)[1][1]
    return value


def decomposition(y: np.ndarray, periods: tuple[int, ...], digest: str) -> np.ndarray:
    """statsforecast's MSTL decomposition of `y` (the function its MSTL model fits with) over the
    ascending `periods`: its seasonal components, (len(y), len(periods)); kept per process by
    `digest` (y's content), so AutoETS's and AutoTheta's MSTL share one."""
    def make() -> np.ndarray:
        from statsforecast.mstl import mstl

        parts = mstl(x=y, period=list(periods))
        return parts.filter(regex="^seasonal").to_numpy(float)

    return _kept(("mstl", periods, len(y), digest), make, 8 * len(y) * len(periods))


def fitted(name: str, season: int | None, mstl: tuple[int, ...], y: np.ndarray):
    """A fitted model for `name` on the history `y` (float, (n,)): an MSTLForecaster when `mstl`
    holds seasons, else statsforecast's model (reference_model). Kept per process by the content
    of `y`, so that the same fit asked for again (the validation stage's fit in the backtest's
    calibration, on the local runner) is not paid twice; at most FITS_BYTES are kept."""
    y = np.ascontiguousarray(y, dtype=float)
    digest = hashlib.blake2b(y.tobytes(), digest_size=16).hexdigest()

    def make():
        periods = tuple(sorted(m for m in mstl if len(y) >= 2 * m))  # STL needs two cycles of a season
        if not periods:
            return reference_model(name, None if mstl else season).fit(y)
        seasonal = decomposition(y, periods, digest)
        trend = _statsforecast_model("ets", None, model="ZZN") if name == "ets" else reference_model(name, None)
        return MSTLForecaster(trend.fit(y - seasonal.sum(axis=1)), seasonal, periods)

    return _kept((name, season, mstl, len(y), digest), make, 8 * len(y) * (6 + len(mstl)))


def member_forecasts(ensemble, each: np.ndarray, season: int | None, mstl: tuple[int, ...]
                     ) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
    """The test forecasts a hybrid's statistical members have just made ({name: (forecasts (n,
    steps), fallbacks)}), for the references of the same name and season policy to use instead of
    fitting and forecasting again: the same model, history and origins give the same forecasts.
    each: the forecasts of ensemble.active() (k, n, steps)."""
    out = {}
    for m, f in zip(ensemble.active(), each):
        stat = m.model if not m.is_network else None
        if stat is not None and getattr(stat, "season", None) == (int(season) if season and season > 1 else None) \
                and getattr(stat, "mstl", ()) == tuple(mstl):
            out[stat.name] = (f, dict(getattr(stat, "fallback", {})))
    return out
