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
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from prefect import flow
from prefect.runtime import flow_run

from flows.report import finish
from flows.budget import apply_season_policy, data_facts, fit_budget, label_of, policy_line, season_policy
from tasks.components.references import label
from tasks.components.search import candidates, estimated_windows, training_regime
from tasks.components.search import members as search_members
from tasks.config import (
    Metric, PipelineConfig, PromoteSettings, for_sweep, members_of, nested, with_overrides,
)
from tasks.errors import InputError
from tasks.evaluate import backtest_task, evaluate_task
from tasks.figures import figures_task, member_name
from tasks.forecast import forecast_task, predict_task, refit_task
from tasks.formats.scores import read_metrics
from tasks.generate import (
    buckets, check_forecast_range_of, generate_task, ingest_task, series_groups_of, shared_calendar, source_digest,
)
from tasks.promote import promote_task
from tasks.runtime.stages import Run, each
from tasks.runtime.stages import StageRef
from tasks.train import train_task
from tasks.validate import (
    ensemble_task, leaderboard, pooled_ranking, scoring_config, seed_noise, validate_task,
)
from tasks.windowing import window_task

log = logging.getLogger("tasks.search")  # a "tasks" logger: its lines reach the run's Prefect logs

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
                   no_cache=no_cache, promote=promote) as run:
        cfg = run.cfg  # every "auto" resolved
        series, calendar, groups = prepare_series(run, cfg)
        cfg = apply_season_policy(run, calendar)
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        if searching(run, groups):  # several members, ranked on the validation range; the best combined
            overrides, budget = search_space(run, series, calendar)
            ranked = rank_members(run, cfg, series, calendar, overrides, statistical=cfg.search.statistical,
                                  deadline=budget.get("deadline", 0.0))
            budget["stopped"] = [label_of(m) for m, ref in zip(ranked.members, ranked.models or ())
                                 if ref.manifest()["meta"].get("stopped_at_deadline")]
            budget["late"] = ranked.late
            return assess(run, cfg, series, ranked.reference, None, settings, promote, ranked.board,
                          ensemble=ranked.ensemble(run, cfg), budget=budget)
        splits = run.map(window_task, each(series=series), window_cfg=cfg.window, calendar=calendar)
        if groups:  # one global model per group of series, the groups side by side on the runner
            trained = run.map(train_task, [{"group": g} for g in groups], model_cfg=cfg.model, train_cfg=cfg.train,
                              splits=splits)
            models = dict(zip(groups, trained)) if trained is not None else None
        else:  # one global model over every series
            model = run.stage(train_task, model_cfg=cfg.model, train_cfg=cfg.train, splits=splits)
            models = {None: model} if model is not None else None
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
    config = for_sweep(config)  # search off: the grid's members are the models
    with Run.start(config, name=flow_run.get_name() or run_name(), refresh=refresh, until=until,
                   no_cache=no_cache, promote=promote) as run:
        cfg = run.cfg
        series, calendar, groups = prepare_series(run, cfg)
        if groups:
            raise InputError("group_column", cfg.data.group_column, "a sweep trains one model per member; "
                             "per-group models are a run of their own")
        ranked = rank_members(run, config, series, calendar, grid or [{}])
        best = ranked.best(1)[0] if ranked.board is not None else 0
        winner = ranked.members[best]
        settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
        return assess(run, winner, series, ranked.splits[winner.window],
                      {None: ranked.models[best]} if ranked.models else None, settings, promote, ranked.board)


def prepare_series(run: Run, cfg: PipelineConfig) -> tuple[tuple[StageRef, ...] | None, dict | None, list[str]]:
    """The series, in hash buckets of series_id, each bucket validated on its own (on the runner);
    the calendar they share (frequency, seasons); their groups (--group-column), if any."""
    raw = run.stage(generate_task, data_cfg=cfg.data, source=source_digest(cfg.data))
    series = run.map(ingest_task, buckets(raw), data_cfg=cfg.data, raw=raw)
    calendar = shared_calendar(series, cfg.data)
    check_forecast_range_of(series, calendar, cfg.data, cfg.window.horizon)  # before anything is trained
    return series, calendar, series_groups_of(series)


def searching(run: Run, groups: list[str]) -> bool:
    """Does this run search (search.mode on or a members file)? "auto" for files means on, except
    with per-group models (one ensemble cannot serve several groups' models): then off, said once."""
    if run.cfg.search.mode == "off":
        return False
    if groups:
        if run.asked.search.mode != "auto":
            raise InputError("search.mode", run.cfg.search.mode, "a search trains one ensemble for all series; "
                             "per-group models (--group-column) need --search off")
        log.info("search: off for per-group models (--group-column): one model per group")
        return False
    return True


def search_space(run: Run, series, calendar: dict | None) -> tuple[list[dict[str, Any]], dict]:
    """The members searched, each {"section.field": value} on top of the run's config: the
    built-in space (tasks/components/search.py) for the calendar's season and the shortest series,
    with its training regime for the data's size, or a members file, each configuration with
    search.seeds seeds; then those that fit the run's time limit (`fit_budget`). The built-in
    space varies only settings left at their default (or "auto") in the asked config: one the user
    set is kept in every member. Returns the members and the budget (fit_budget)."""
    cfg, asked = run.cfg, run.asked
    data = data_facts(series)
    if cfg.search.mode == "on":
        seasons = (calendar or {}).get("seasons") or []
        space = candidates((calendar or {}).get("season_length"), data["shortest"], cfg.window.horizon,
                           longer=seasons[1] if len(seasons) > 1 else None)
        for c in space:  # its training regime: a fixed amount of work per epoch on large data
            windows, _ = estimated_windows(data["points"], data["n_series"], c["window.seq_length"],
                                           cfg.window.horizon, cfg.window.train_fraction, cfg.window.val_fraction)
            c.update(training_regime(windows))
        default, kept = PipelineConfig(), set()
        for key in {k for c in space for k in c}:
            section, name = key.split(".")
            if getattr(getattr(asked, section), name) != getattr(getattr(default, section), name):
                kept.add(key)
        if kept:
            log.info("search: keeping %s as set in every member", ", ".join(sorted(kept)))
            space = list({tuple(sorted((k, v) for k, v in c.items() if k not in kept)): None for c in space})
            space = [dict(c) for c in space]
    else:
        space = members_of(cfg, json.loads(Path(cfg.search.mode).read_text()), "search.mode", cfg.search.mode)
    members = search_members(space, cfg.search.seeds, cfg.train.seed)
    season = cfg.eval.season_length or (calendar or {}).get("season_length")
    mstl = season_policy(cfg, calendar)
    members, budget = fit_budget(run, members, data, season, mstl)
    budget["policy"] = policy_line(calendar, space, season, mstl)
    statistical = ", ".join(label(n, season, mstl) for n in cfg.search.statistical)
    log.info("search: %d configuration(s) x %d seed(s), ranked on the validation range; the best %d combined by "
             "the %s%s", len(space), cfg.search.seeds, min(cfg.search.top_k, len(members)), cfg.search.combine,
             f", weighted with {statistical} by 1 / MASE^2 before the test range" if statistical else "")
    return members, budget


@dataclass
class Ranked:
    """Members trained and ranked on the validation range: their configs, window entries (per
    distinct window setting, one per bucket), train entries, the leaderboard (best first), the
    statistical members (names) with their season length (0: none) and validate entries."""

    members: list[PipelineConfig]
    splits: dict
    models: tuple[StageRef, ...] | None
    board: Any  # pandas.DataFrame | None
    reference: tuple[StageRef, ...] | None  # the window entries of the longest window
    statistical: tuple[str, ...] = ()
    season: int = 0
    statistical_scores: tuple[StageRef, ...] = ()
    mstl: tuple[int, ...] = ()  # the seasons MSTL removes before the statistical members (sub-daily data)
    late: list[str] = field(default_factory=list)  # members the time limit left unstarted (labels)

    def best(self, k: int) -> list[int]:
        """The positions of the best `k` members (by validation MASE, ties in member order)."""
        return [int(i) for i in self.board["member"].iloc[:k]]

    def best_networks(self, k: int, order: list[int] | None = None) -> list[int]:
        """The positions of the best `k` networks (by validation MASE, or in `order`: member
        numbers best first; ties in member order)."""
        order = [int(x) for x in self.board["member"]] if order is None else order
        return [i for i in order if i < len(self.members)][:k]

    def ensemble(self, run: Run, cfg: PipelineConfig) -> dict | None:
        """The ensemble of the best search.top_k networks and every statistical member (weighted
        before the test range: tasks.components.ensemble), cross-fitted: the networks that
        forecast are the best on the validation and calibration origins together, those whose
        residuals calibrate the intervals the best on the validation origins alone
        (tasks.validate.pooled_ranking); the leaderboard gains the columns forecasts and
        calibrates (the statistical members do both). Returns the train entries and window entries of both
        (the forecasting networks first), their configs, how many forecast, and the packed
        model file (the ensemble stage)."""
        if self.models is None or self.board is None:
            return None
        forecasting = self.best_networks(cfg.search.top_k, pooled_ranking(self.board))
        calibrating = self.best_networks(cfg.search.top_k)
        nets = forecasting + [i for i in calibrating if i not in forecasting]
        member = self.board["member"]  # the leaderboard says which members the ensemble uses for what
        statistical = member >= len(self.members)
        self.board["forecasts"] = member.isin(forecasting) | statistical
        self.board["calibrates"] = member.isin(calibrating) | statistical
        models = tuple(self.models[i] for i in nets)
        windows = [self.splits[self.members[i].window] for i in nets]
        positions = {} if nets == forecasting else {
            "networks": tuple(range(len(forecasting))), "calibration_networks": tuple(nets.index(i) for i in calibrating)}
        hybrid = {"statistical": self.statistical, "season": self.season, "reference": self.reference,
                  "windows": tuple(w for ws in windows for w in ws), "scores": self.statistical_scores,
                  **({"mstl": self.mstl} if self.mstl else {})}
        packed = run.stage(ensemble_task, eval_cfg=scoring_config(cfg.eval), models=models, combine=cfg.search.combine,
                           **(hybrid if self.statistical else {}), **positions)
        return {"models": models, "cfgs": [self.members[i] for i in nets], "windows": windows, "packed": packed,
                "combine": cfg.search.combine, "statistical": self.statistical, "made": self.statistical_scores,
                "labels": tuple(label(n, self.season, self.mstl) for n in self.statistical),
                "networks": len(forecasting)}  # the forecasting networks are the first of models


def rank_members(run: Run, base: PipelineConfig, series, calendar: dict | None,
                 overrides: list[dict[str, Any]], statistical: tuple[str, ...] = (), deadline: float = 0.0) -> Ranked:
    """Train every member (`overrides` on top of `base`) on the runner and score each on the
    validation range only, with the `statistical` members (a search's: AutoETS, AutoTheta,
    seasonal naive, fitted on the history before the validation range) beside them. Members with different window lengths share the
    val/cal/test targets of the longest (the window stage's anchor) and are scored on its windows.
    deadline: no member starts another epoch after it (a time.time(); 0: none)."""
    members = [run.resolve(with_overrides(base, nested(m))) for m in overrides]
    lengths = {m.window.seq_length for m in members}
    anchor = {"anchor": max(lengths)} if len(lengths) > 1 else {}
    splits: dict = {}
    for m in members:  # members share the window entries of equal window settings
        if m.window not in splits:
            splits[m.window] = run.map(window_task, each(series=series), window_cfg=m.window, calendar=calendar,
                                       **anchor)
    longest = max(splits, key=lambda w: w.seq_length)
    season = int(base.eval.season_length or (calendar or {}).get("season_length") or 0)  # 0: none (None skips a stage)
    mstl = season_policy(base, calendar)
    scoring = scoring_config(base.eval)
    trains = [{"model_cfg": m.model, "train_cfg": m.train.model_copy(update={"deadline": deadline}),
               "splits": splits[m.window]} for m in members]
    stats = [{"splits": splits[longest], "statistical": name, "season": season, **({"mstl": mstl} if mstl else {}),
              "eval_cfg": scoring} for name in statistical]
    # the statistical members need no network: they take turns with the networks in one wave (their
    # statsforecast code holds Python's GIL, torch's kernels release it); no network starts after the deadline
    models, stat_scores = run.map_together([(train_task, trains, deadline), (validate_task, stats, 0.0)],
                                           interleave=True)
    late = [label_of(m) for m, ref in zip(members, models or ()) if ref is None]  # not started by the deadline
    if late:
        kept = [i for i, ref in enumerate(models) if ref is not None]
        members, overrides, models = [members[i] for i in kept], [overrides[i] for i in kept], tuple(models[i] for i in kept)
    board = None
    if models is not None:  # rank on the validation range only; the test range is the winner's alone
        reference = {"reference": splits[longest]} if anchor else {}
        items = [{"splits": splits[m.window], "model": model, **reference} for m, model in zip(members, models)]
        net_scores = run.map(validate_task, items, eval_cfg=scoring)
        if net_scores is not None and stat_scores is not None:
            scores = (*net_scores, *stat_scores)
            board = leaderboard([*overrides, *({"forecaster": label(n, season, mstl)} for n in statistical)], scores,
                                [*models, *(None for _ in statistical)])
            return Ranked(members, splits, models, board, splits[longest], tuple(statistical), season,
                          tuple(stat_scores), mstl, late)
    return Ranked(members, splits, models, board, splits[longest], late=late)


def assess(run: Run, cfg: PipelineConfig, series, splits, models: dict | None, settings: PromoteSettings | None,
           promote: bool, board=None, ensemble: dict | None = None, budget: dict | None = None) -> dict:
    """Backtest the model(s) bucket by bucket (and group by group) on the test range, combine,
    draw, forecast the future, judge the model against the champion when `settings` say so, and
    finish the run. models: {group: train entry}, {None: entry} without groups; ensemble: a
    search's (Ranked.ensemble), forecasting from `splits`, the longest window's entries."""
    if ensemble is not None:
        models = {None: ensemble["packed"]} if ensemble["packed"] is not None else None
    model = next(iter(models.values())) if models else None
    parts = in_groups(series, splits, models)  # one item per bucket and group of series in it
    items = parts and [{"split": p["split"], "model": p["model"], "group": p["group"]} for p in parts]
    combine = {}
    if ensemble is not None and items:  # every member reads bucket b through its own window entry
        combine = {"combine": ensemble["combine"], "packed": ensemble["packed"]}
        items = [{**it, "model": ensemble["models"], "member_splits": tuple(w[b] for w in ensemble["windows"])}
                 for b, it in enumerate(items)]
    made = {"made": ensemble["made"]} if ensemble is not None and ensemble.get("made") else {}
    backtests = run.map(backtest_task, items, eval_cfg=cfg.eval, model_cfg=cfg.model, train_cfg=cfg.train, **combine,
                        **made)  # the statistical members' test forecasts, made beside the networks
    scores = run.stage(evaluate_task, backtests=backtests, seed_noise=seed_noise(board))  # the gate's ties
    item_series = parts and tuple(p["series"] for p in parts)  # the series of each backtest item
    if board is not None and model is not None:  # the train line speaks of the model the run goes on with
        run.feature(ensemble["models"][0] if ensemble else model)
    name = forecaster_name(cfg, ensemble)
    run.stage(figures_task, fig_cfg=cfg.figures, name=name, scores=scores, backtests=backtests,
              series=item_series, model=model, **loss_curves(ensemble))
    finals = forecasters(run, cfg, splits, models, ensemble, items) if backtests else None
    predictions = run.map(predict_task, finals and [{**it, "series": p["series"], "backtest": b}
                                                    for it, p, b in zip(finals, parts, backtests)], **combine)
    run.stage(forecast_task, fig_cfg=cfg.figures, name=name, predictions=predictions, series=item_series)
    decision = None
    if settings is not None and model is not None:
        if len(models) > 1:
            decision = {"action": "skipped", "reason": "per-group models are not promoted (one registry per run)"}
        else:
            gate = read_metrics(scores.path)["gate"] if scores is not None else None
            decision = promote_task(splits, model, gate, str(run.paths.root), run.name, settings, cfg.eval)
    winner = (ensemble["cfgs"][0] if ensemble else cfg) if board is not None else None
    return finish(run, promoted=decision, promote=promote, leaderboard=board, winner=winner,
                  search=ensemble["statistical"] if ensemble is not None else None,
                  budget=budget)


def forecasters(run: Run, cfg: PipelineConfig, splits, models: dict | None, ensemble: dict | None,
                items: list[dict] | None) -> list[dict] | None:
    """The predict stage's items (split, model[, member_splits], group): the backtest's, with every
    model retrained on all windows first when forecast.refit_full. An ensemble's items hold only
    the networks that forecast (the first ensemble["networks"]; the others only calibrate the
    backtest's intervals), each retrained on its own."""
    if ensemble is not None and items:
        n = ensemble["networks"]
        items = [{**it, "model": it["model"][:n], "member_splits": it["member_splits"][:n]} for it in items]
    if not cfg.forecast.refit_full or not items or not run.wants("forecast"):
        return items
    if ensemble is not None:
        refits = run.map(refit_task, [{"model": m, "model_cfg": c.model, "train_cfg": c.train, "splits": w}
                                      for m, c, w in list(zip(ensemble["models"], ensemble["cfgs"],
                                                              ensemble["windows"]))[:ensemble["networks"]]])
        return refits and [{**it, "model": refits} for it in items]
    refits = run.map(refit_task, [{"model": m, "group": g} for g, m in models.items()], model_cfg=cfg.model,
                     train_cfg=cfg.train, splits=splits)
    return refits and [{**it, "model": dict(zip(models, refits))[it["group"]]} for it in items]


def loss_curves(ensemble: dict | None) -> dict:
    """What the loss figure draws of an ensemble: each forecasting network's train entry and name,
    and a note on its statistical members (fitted, not trained); nothing for a single model."""
    if not ensemble:
        return {}
    n = ensemble["networks"]
    note = f"{', '.join(ensemble['labels'])}: fitted, not trained" if ensemble["statistical"] else ""
    return {"members": tuple(ensemble["models"][:n]), "member_names": tuple(member_name(c) for c in ensemble["cfgs"][:n]),
            **({"note": note} if note else {})}


def forecaster_name(cfg: PipelineConfig, ensemble: dict | None) -> str:
    """How figures name the forecaster: its cell ("GRU"), "ensemble of 3", or "hybrid of 3 networks
    and 3 statistical"."""
    if not ensemble:
        return cfg.model.cell.upper()
    if ensemble["statistical"]:
        return f"hybrid of {ensemble['networks']} networks and {len(ensemble['statistical'])} statistical"
    return f"ensemble of {ensemble['networks']}"


def in_groups(series, splits, models: dict | None) -> list[dict] | None:
    """One item per bucket and group of series in it: {series, split, model, group}."""
    if series is None or splits is None or models is None:
        return None
    items = []
    for s, sp in zip(series, splits):
        present = s.manifest()["meta"].get("groups") or [None]
        items += [{"series": s, "split": sp, "model": models[g], "group": g} for g in present if g in models]
    return items
