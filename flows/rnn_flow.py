"""rnn_pipeline: generate -> window -> train -> evaluate -> figures (-> forecast), as one Prefect flow.

    python flows/rnn_flow.py                 # the tutorial, end to end, with sensible defaults
    python flows/rnn_flow.py --epochs 20     # change one setting: only affected stages rerun
    python flows/rnn_flow.py server          # once per session: a local Prefect server + UI; reruns take seconds
    python flows/rnn_flow.py --help          # the subcommands and every option

Each stage is a task in tasks/<stage>.py; its logic is one step from here. What a stage reads is
what is passed to it below, and its cache key covers exactly that (tasks/runtime/stages.py).
"""

# No `from __future__ import annotations` in this module: Prefect validates the flow's parameters
# from its annotations, resolving string ones in the function's __globals__ (PrefectHQ/prefect#19289),
# and `serve` hands each run a copy of the function pickled by value, whose globals hold only the
# names its body uses. Real annotations need no lookup.
import os
import sys
from pathlib import Path

# Quiet, offline-friendly Prefect defaults (the repo's prefect.toml says the same, but only when
# run from the repository root). Set before Prefect is imported; explicit settings win.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")

if __package__ in (None, ""):  # run or loaded as a script (a worker's entrypoint): this checkout's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if __name__ == "__main__":  # a command: parse and validate the options before Prefect's slow import
    from flows.cli import main

    sys.exit(main(sys.argv[1:]))

import datetime as dt  # noqa: E402
import secrets  # noqa: E402
from typing import Any, Literal, Optional  # noqa: E402

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows.report import finish  # noqa: E402
from tasks.config import Metric, PipelineConfig, PromoteSettings, with_overrides  # noqa: E402
from tasks.errors import InputError  # noqa: E402
from tasks.evaluate import backtest_task, evaluate_task  # noqa: E402
from tasks.figures import figures_task  # noqa: E402
from tasks.forecast import forecast_task, predict_task, refit_task  # noqa: E402
from tasks.formats.scores import read_metrics  # noqa: E402
from tasks.generate import (  # noqa: E402
    buckets, generate_task, ingest_task, series_groups_of, shared_calendar, source_digest,
)
from tasks.promote import promote_task  # noqa: E402
from tasks.runtime.stages import Run, each  # noqa: E402
from tasks.runtime.stages import StageRef  # noqa: E402
from tasks.train import train_task  # noqa: E402
from tasks.validate import leaderboard, validate_task  # noqa: E402
from tasks.windowing import window_task  # noqa: E402

Stage = Literal["generate", "window", "train", "evaluate", "figures", "forecast"]


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
                   no_cache=no_cache) as run:
        cfg = run.cfg  # every "auto" resolved
        series, calendar, groups = prepare_series(run, cfg)
        splits = run.map(window_task, each(series=series), window_cfg=cfg.window, calendar=calendar)
        if groups:  # one global model per group of series, the groups side by side on the runner
            trained = run.map(train_task, [{"group": g} for g in groups], model_cfg=cfg.model, train_cfg=cfg.train,
                              splits=splits)
            models = dict(zip(groups, trained)) if trained is not None else None
        else:  # one global model over every series
            model = run.stage(train_task, model_cfg=cfg.model, train_cfg=cfg.train, splits=splits)
            models = {None: model} if model is not None else None
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        return assess(run, cfg, series, splits, models, settings, promote)


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
    with Run.start(config, name=flow_run.get_name() or run_name(), refresh=refresh, until=until,
                   no_cache=no_cache) as run:
        cfg = run.cfg
        series, calendar, groups = prepare_series(run, cfg)
        if groups:
            raise InputError("group_column", cfg.data.group_column, "a sweep trains one model per member; "
                             "per-group models are a run of their own")
        members = [run.resolve(with_overrides(config, nested(m))) for m in grid or [{}]]
        splits = {}
        for m in members:  # members share the window entries of equal window settings
            if m.window not in splits:
                splits[m.window] = run.map(window_task, each(series=series), window_cfg=m.window, calendar=calendar)
        models = run.map(train_task, [{"model_cfg": m.model, "train_cfg": m.train, "splits": splits[m.window]}
                                      for m in members])
        board, best = None, 0
        if models is not None:  # rank on the validation range only; the test range is the winner's alone
            scores = run.map(validate_task, [{"splits": splits[m.window], "model": model}
                                             for m, model in zip(members, models)], eval_cfg=cfg.eval)
            board = leaderboard(grid or [{}], scores, models)
            best = int(board["member"].iloc[0])
        winner = members[best]
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        return assess(run, winner, series, splits[winner.window], {None: models[best]} if models else None,
                      settings, promote, board)


def prepare_series(run: Run, cfg: PipelineConfig) -> tuple[tuple[StageRef, ...] | None, dict | None, list[str]]:
    """The series, in hash buckets of series_id, each bucket validated on its own (on the runner);
    the calendar they share (frequency, seasons); their groups (--group-column), if any."""
    raw = run.stage(generate_task, data_cfg=cfg.data, source=source_digest(cfg.data))
    series = run.map(ingest_task, buckets(raw), data_cfg=cfg.data, raw=raw)
    return series, shared_calendar(series, cfg.data), series_groups_of(series)


def assess(run: Run, cfg: PipelineConfig, series, splits, models: dict | None, settings: PromoteSettings | None,
           promote: bool, board=None) -> dict:
    """Backtest the model(s) bucket by bucket (and group by group) on the test range, combine,
    draw, forecast the future, judge the model against the champion when `settings` say so, and
    finish the run. models: {group: train entry}, {None: entry} without groups."""
    model = next(iter(models.values())) if models else None
    parts = in_groups(series, splits, models)  # one item per bucket and group of series in it
    backtests = run.map(backtest_task, parts and [{"split": p["split"], "model": p["model"], "group": p["group"]}
                                                  for p in parts],
                        eval_cfg=cfg.eval, model_cfg=cfg.model, train_cfg=cfg.train)
    scores = run.stage(evaluate_task, backtests=backtests)
    item_series = parts and tuple(p["series"] for p in parts)  # the series of each backtest item
    run.stage(figures_task, fig_cfg=cfg.figures, model_cfg=cfg.model, scores=scores, backtests=backtests,
              series=item_series, model=model)
    finals = models
    if cfg.forecast.refit_full and models:
        refits = run.map(refit_task, [{"model": m, "group": g} for g, m in models.items()], model_cfg=cfg.model,
                         train_cfg=cfg.train, splits=splits)
        finals = dict(zip(models, refits)) if refits is not None else None
    predictions = run.map(predict_task, backtests and finals and [
        {"series": p["series"], "split": p["split"], "model": finals[p["group"]], "backtest": b, "group": p["group"]}
        for p, b in zip(parts, backtests)])
    run.stage(forecast_task, fig_cfg=cfg.figures, model_cfg=cfg.model, predictions=predictions, series=item_series)
    decision = None
    if settings is not None and model is not None:
        if len(models) > 1:
            decision = {"action": "skipped", "reason": "per-group models are not promoted (one registry per run)"}
        else:
            gate = read_metrics(scores.path)["gate"] if scores is not None else None
            decision = promote_task(splits, model, gate, str(run.paths.root), run.name, settings, cfg.eval)
    return finish(run, promoted=decision, promote=promote, leaderboard=board, winner=cfg if board is not None else None)


def in_groups(series, splits, models: dict | None) -> list[dict] | None:
    """One item per bucket and group of series in it: {series, split, model, group}."""
    if series is None or splits is None or models is None:
        return None
    items = []
    for s, sp in zip(series, splits):
        present = s.manifest()["meta"].get("groups") or [None]
        items += [{"series": s, "split": sp, "model": models[g], "group": g} for g in present if g in models]
    return items


def nested(member: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"model.cell": "gru"} -> {"model": {"cell": "gru"}} (the overrides of one grid member)."""
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in member.items():
        section, _, name = dotted.partition(".")
        out.setdefault(section, {})[name] = value
    return out
