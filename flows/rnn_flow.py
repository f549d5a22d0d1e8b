"""rnn_pipeline and rnn_sweep: the whole pipeline as one Prefect flow, its stages called in order below.

    python flows/rnn_flow.py                 # the tutorial, end to end, with sensible defaults
    python flows/rnn_flow.py --epochs 20     # change one setting: only affected stages rerun
    python flows/rnn_flow.py server          # once per session: a local Prefect server + UI; reruns take seconds
    python flows/rnn_flow.py --help          # the subcommands and every option (flows/commands.py)

Every task kind the flows call, in the order a run meets them (each one step from here):

    generate_task   tasks/generate.py     the series: generated, or the user's file staged in buckets
    ingest_task     tasks/generate.py     one bucket of series checked and made regular
    window_task     tasks/windowing.py    the Split of a bucket (its scalers fitted on train only)
    train_task      tasks/train.py        one global model (per group, per sweep or search member)
    validate_task   tasks/validate.py     a member's scores on the validation range (search, sweep)
    ensemble_task   tasks/validate.py     a search's best members packed into one model file
    backtest_task   tasks/evaluate.py     the rolling-origin backtest of one bucket on the test range
    evaluate_task   tasks/evaluate.py     the buckets' backtests as one, and the baseline gate
    figures_task    tasks/figures.py      the run's figures
    refit_task      tasks/forecast.py     a model retrained on every window (forecast.refit_full)
    predict_task    tasks/forecast.py     one bucket's forecast past the end of its series
    forecast_task   tasks/forecast.py     the buckets' forecasts as one file and its figure
    promote_task    tasks/promote.py      this run's model against the champion (--promote)

The search's own steps (members, training side by side, ranking, the ensemble) are
flows/search.py's; the end of the run (summary, artifacts) is flows/report.py's. What a stage
reads is what is passed to it below, and its cache key covers exactly that (tasks/runtime/stages.py);
the values passed between the steps are the frozen dataclasses below and in flows/search.py.
"""

# No `from __future__ import annotations` in this module: Prefect validates the flow's parameters
# from its annotations, resolving string ones in the function's __globals__ (PrefectHQ/prefect#19289),
# and `serve` hands each run a copy of the function pickled by value, whose globals hold only the
# names its body uses. Real annotations need no lookup.
import sys
from pathlib import Path

if __package__ in (None, ""):  # run or loaded as a script (a worker's entrypoint): this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if __name__ == "__main__":  # a command: flows/commands.py parses and checks it before Prefect's slow import;
    try:  # the flow below is then imported by `run`, as the module flows.rnn_flow (this block is no import of it)
        from flows.commands import main
    except ModuleNotFoundError as exc:  # run by a Python without the project installed: one line, the fix in it
        from flows.environment import missing_package_line

        print(missing_package_line(exc, sys.executable, sys.argv[0]), file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))

import datetime as dt
import secrets
from dataclasses import dataclass, replace
from typing import Any, Literal, Optional

from prefect import flow
from prefect.runtime import flow_run

from flows.budget import apply_season_policy, label_of
from flows.report import finish
from flows.search import EnsemblePlan, plan_ensemble, rank_members, search_space, searching
from flows.wording import gate_reason
from tasks.config import Metric, PipelineConfig, PromoteSettings, for_sweep
from tasks.errors import InputError
from tasks.evaluate import backtest_task, evaluate_task
from tasks.figures import figures_task, member_name
from tasks.forecast import forecast_task, predict_task, refit_task
from tasks.formats.scores import read_metrics
from tasks.generate import (
    buckets, check_forecast_range_of, generate_task, ingest_task, series_groups_of, shared_calendar, source_digest,
)
from tasks.promote import promote_task
from tasks.runtime.stages import Run, StageRef, each
from tasks.train import train_task
from tasks.validate import seed_noise
from tasks.windowing import window_task

Stage = Literal["generate", "window", "train", "evaluate", "figures", "forecast"]


@dataclass(frozen=True)
class Fitted:
    """What the stages after training read: the config the model(s) ran with; the window entries
    they forecast from (one per bucket; a search's: its longest window's); the train entries
    ({group: entry}, {None: entry} without groups; a search's: {None: its packed ensemble}; None:
    not trained, e.g. --until window); a search's ensemble and a search's or sweep's leaderboard."""

    cfg: PipelineConfig
    windows: tuple[StageRef, ...] | None
    models: dict | None
    ensemble: EnsemblePlan | None = None
    leaderboard: Any = None  # pandas.DataFrame | None

    @property
    def model(self) -> StageRef | None:
        """The (first) model the run goes on with."""
        return next(iter(self.models.values())) if self.models else None


@dataclass(frozen=True)
class BucketItem:
    """One bucket of series and one group of series in it: its series entry, its window entry, the
    model that forecasts it (a train entry, or an ensemble's networks' entries, each reading the
    bucket through its own window entry: member_splits), and the group (None: no groups)."""

    series: StageRef
    split: StageRef
    model: Any  # StageRef | tuple[StageRef, ...]
    group: str | None
    member_splits: tuple[StageRef, ...] | None = None

    def inputs(self) -> dict:
        """The backtest and predict stages' inputs for this item."""
        out = {"split": self.split, "model": self.model, "group": self.group}
        return out if self.member_splits is None else {**out, "member_splits": self.member_splits}


def run_name() -> str:
    """Flow run name, also the run directory's name: rnn-<UTC time>-<random>."""
    return f"rnn-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@flow(name="rnn_pipeline", flow_run_name=run_name, validate_parameters=True)
def rnn_pipeline(
    config: PipelineConfig = PipelineConfig(),
    refresh: Optional[Stage] = None,
    until: Stage = "figures",
    no_cache: bool = False,
    promote: bool = False,
    promote_metric: Metric = "mase",
    promote_margin: float = 0.0,
) -> dict:
    """Train and evaluate a recurrent forecaster, reusing every stage whose inputs are unchanged.

    Args:
        config: every setting, one section per stage ("auto" values are resolved at the start).
        refresh: recompute this stage and every stage after it.
        until: stop after this stage (e.g. "window" for data preparation only; "forecast" to also
            forecast past the end of every series).
        no_cache: recompute every stage.
        promote: score this run's model and the champion on the newest holdout; keep the better.
        promote_metric: the metric that decides (lower is better).
        promote_margin: relative improvement the challenger needs (0.05: 5% lower).
    """
    with Run.start(config, name=flow_run.get_name() or run_name(), refresh=refresh, until=until,
                   no_cache=no_cache, promote=promote) as run:
        cfg = run.cfg  # every "auto" resolved
        series, calendar, groups = prepare_series(run, cfg)  # generate, ingest
        cfg = apply_season_policy(run, calendar)
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        if searching(run, groups):  # several members, ranked on the validation range; the best combined
            members, budget = search_space(run, series, calendar)
            found = rank_members(run, cfg, series, calendar, members, statistical=cfg.search.statistical,
                                 deadline=budget.get("deadline", 0.0))  # window, train, validate
            budget["stopped"] = [label_of(m) for m, ref in zip(found.members, found.models or ())
                                 if ref.manifest()["meta"].get("stopped_at_deadline")]
            budget["late"] = list(found.late)
            ensemble, board = plan_ensemble(run, cfg, found)  # ensemble
            models = {None: ensemble.packed} if ensemble is not None and ensemble.packed is not None else None
            fitted = Fitted(cfg, found.reference, models, ensemble, board)
            return evaluate_and_forecast(run, series, fitted, settings, promote, budget)
        windows = run.map(window_task, each(series=series), window_cfg=cfg.window, calendar=calendar)
        fitted = Fitted(cfg, windows, train(run, cfg, windows, groups))
        return evaluate_and_forecast(run, series, fitted, settings, promote)


@flow(name="rnn_sweep", flow_run_name=run_name, validate_parameters=True)
def rnn_sweep(
    config: PipelineConfig = PipelineConfig(),
    grid: list[dict[str, Any]] = [],  # noqa: B006 (a flow parameter's JSON default)
    refresh: Optional[Stage] = None,
    until: Stage = "figures",
    no_cache: bool = False,
    promote: bool = False,
    promote_metric: Metric = "mase",
    promote_margin: float = 0.0,
) -> dict:
    """Train one model per member of a grid, rank them on the validation range, then evaluate the
    winner on the test range (and promote it) as rnn_pipeline does.

    Args:
        config: the settings every member starts from.
        grid: the members, each {"section.field": value, ...} on top of `config`
            (e.g. [{"model.cell": "gru", "window.seq_length": 12}, ...]).
        Others: as rnn_pipeline.
    """
    config = for_sweep(config)  # search off: the grid's members are the models
    with Run.start(config, name=flow_run.get_name() or run_name(), refresh=refresh, until=until,
                   no_cache=no_cache, promote=promote) as run:
        cfg = run.cfg
        series, calendar, groups = prepare_series(run, cfg)  # generate, ingest
        if groups:
            raise InputError("group_column", cfg.data.group_column, "a sweep trains one model per member; "
                             "per-group models are a run of their own")
        found = rank_members(run, config, series, calendar, grid or [{}])  # window, train, validate
        best = found.best(1)[0] if found.leaderboard is not None else 0
        winner = found.members[best]
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        fitted = Fitted(winner, found.windows[winner.window], {None: found.models[best]} if found.models else None,
                        leaderboard=found.leaderboard)
        return evaluate_and_forecast(run, series, fitted, settings, promote)


def prepare_series(run: Run, cfg: PipelineConfig) -> tuple[tuple[StageRef, ...] | None, dict | None, list[str]]:
    """The generate stage, then the ingest stage per hash bucket of series_id (each bucket checked on
    its own, on the runner): the series entries; the calendar they share (frequency, seasons); their
    groups (--group-column), if any."""
    raw = run.stage(generate_task, data_cfg=cfg.data, source=source_digest(cfg.data))
    series = run.map(ingest_task, buckets(raw), data_cfg=cfg.data, raw=raw)
    calendar = shared_calendar(series, cfg.data)
    check_forecast_range_of(series, calendar, cfg.data, cfg.window.horizon)  # before anything is trained
    return series, calendar, series_groups_of(series)


def train(run: Run, cfg: PipelineConfig, windows: tuple[StageRef, ...] | None, groups: list[str]) -> dict | None:
    """The train stage: one global model over every series ({None: entry}), or one per group of
    series ({group: entry}), the groups side by side on the runner; None when it did not run."""
    if groups:
        trained = run.map(train_task, [{"group": g} for g in groups], model_cfg=cfg.model, train_cfg=cfg.train,
                          splits=windows)
        return dict(zip(groups, trained)) if trained is not None else None
    model = run.stage(train_task, model_cfg=cfg.model, train_cfg=cfg.train, splits=windows)
    return {None: model} if model is not None else None


def evaluate_and_forecast(run: Run, series, fitted: Fitted, settings: PromoteSettings | None, promote: bool,
                          budget: dict | None = None) -> dict:
    """The stages after training, in order: backtest each bucket item on the test range, evaluate
    (the buckets as one, the gate), figures, predict past the end of every series (refit first with
    forecast.refit_full), forecast, promote when `settings` say so; then finish the run (flows/report.py)."""
    cfg, ensemble, model = fitted.cfg, fitted.ensemble, fitted.model
    items = bucket_items(series, fitted)  # one per bucket and group of series in it
    rule = {"combine": ensemble.combine, "packed": ensemble.packed} if ensemble is not None and items else {}
    made = {"made": ensemble.made} if ensemble is not None and ensemble.made else {}
    backtests = run.map(backtest_task, items and [it.inputs() for it in items], eval_cfg=cfg.eval,
                        model_cfg=cfg.model, train_cfg=cfg.train, **rule,
                        **made)  # the statistical members' test forecasts, made beside the networks
    scores = run.stage(evaluate_task, backtests=backtests, seed_noise=seed_noise(fitted.leaderboard))  # the gate's ties
    item_series = items and tuple(it.series for it in items)  # the series of each backtest item
    if fitted.leaderboard is not None and model is not None:  # the train line speaks of the model the run goes on with
        run.feature(ensemble.models[0] if ensemble else model)
    name = forecaster_name(cfg, ensemble)
    run.stage(figures_task, fig_cfg=cfg.figures, name=name, scores=scores, backtests=backtests,
              series=item_series, model=model, **loss_curves(ensemble))
    finals = forecasters(run, fitted, items) if backtests else None
    predictions = run.map(predict_task, finals and [{**it.inputs(), "series": it.series, "backtest": b}
                                                    for it, b in zip(finals, backtests)], **rule)
    run.stage(forecast_task, fig_cfg=cfg.figures, name=name, predictions=predictions, series=item_series)
    decision = promotion(run, fitted, scores, settings)
    winner = (ensemble.cfgs[0] if ensemble else cfg) if fitted.leaderboard is not None else None
    return finish(run, promoted=decision, promote=promote, leaderboard=fitted.leaderboard, winner=winner,
                  search=ensemble.statistical if ensemble is not None else None, budget=budget)


def bucket_items(series, fitted: Fitted) -> list[BucketItem] | None:
    """One item per bucket and group of series in it (None when a stage before did not run); an
    ensemble's items hold its networks' train entries, each reading bucket b through its own
    window entry."""
    if series is None or fitted.windows is None or fitted.models is None:
        return None
    items = []
    for s, window in zip(series, fitted.windows):
        present = s.manifest()["meta"].get("groups") or [None]
        items += [BucketItem(s, window, fitted.models[g], g) for g in present if g in fitted.models]
    if fitted.ensemble is not None and items:
        items = [replace(it, model=fitted.ensemble.models, member_splits=tuple(w[b] for w in fitted.ensemble.windows))
                 for b, it in enumerate(items)]
    return items


def forecasters(run: Run, fitted: Fitted, items: list[BucketItem] | None) -> list[BucketItem] | None:
    """The predict stage's items: the backtest's, with every model retrained on all windows first
    (the refit stage) when forecast.refit_full. An ensemble's items hold only the networks that
    forecast (the first ensemble.networks; the others only calibrate the backtest's intervals),
    each retrained on its own."""
    cfg, ensemble = fitted.cfg, fitted.ensemble
    if ensemble is not None and items:
        n = ensemble.networks
        items = [replace(it, model=it.model[:n], member_splits=it.member_splits[:n]) for it in items]
    if not cfg.forecast.refit_full or not items or not run.wants("forecast"):
        return items
    if ensemble is not None:
        refits = run.map(refit_task, [{"model": m, "model_cfg": c.model, "train_cfg": c.train, "splits": w}
                                      for m, c, w in list(zip(ensemble.models, ensemble.cfgs,
                                                              ensemble.windows))[:ensemble.networks]])
        return refits and [replace(it, model=refits) for it in items]
    refits = run.map(refit_task, [{"model": m, "group": g} for g, m in fitted.models.items()], model_cfg=cfg.model,
                     train_cfg=cfg.train, splits=fitted.windows)
    return refits and [replace(it, model=dict(zip(fitted.models, refits))[it.group]) for it in items]


def promotion(run: Run, fitted: Fitted, scores: StageRef | None, settings: PromoteSettings | None) -> dict | None:
    """The promote stage, when asked for (`settings`) and a model was trained: this run's model
    against the champion, judged with the gate's verdict; per-group models are not promoted."""
    if settings is None or fitted.model is None:
        return None
    if len(fitted.models) > 1:
        return {"action": "skipped", "reason": "per-group models are not promoted (one registry per run)"}
    gate = read_metrics(scores.path)["gate"] if scores is not None else None
    if gate is not None:  # the gate decided in numbers; why, in the report layer's words
        gate = {**gate, "reason": gate_reason(gate)} if gate.get("why") else gate
    return promote_task(fitted.windows, fitted.model, gate, str(run.paths.root), run.name, settings, fitted.cfg.eval)


def loss_curves(ensemble: EnsemblePlan | None) -> dict:
    """What the loss figure draws of an ensemble: each forecasting network's train entry and name,
    and a note on its statistical members (fitted, not trained); nothing for a single model."""
    if not ensemble:
        return {}
    n = ensemble.networks
    note = f"{', '.join(ensemble.labels)}: fitted, not trained" if ensemble.statistical else ""
    return {"members": tuple(ensemble.models[:n]), "member_names": tuple(member_name(c) for c in ensemble.cfgs[:n]),
            **({"note": note} if note else {})}


def forecaster_name(cfg: PipelineConfig, ensemble: EnsemblePlan | None) -> str:
    """How figures name the forecaster: its cell ("GRU"), "ensemble of 3", or "hybrid of 3 networks
    and 3 statistical"."""
    if not ensemble:
        return cfg.model.cell.upper()
    if ensemble.statistical:
        return f"hybrid of {ensemble.networks} networks and {len(ensemble.statistical)} statistical"
    return f"ensemble of {ensemble.networks}"
