"""The search (and a sweep's ranking): members trained side by side, ranked on the validation
range, the best combined into one ensemble.

    search_space   the members: the built-in space for the data's season and size, or a members
                   file, each with search.seeds seeds, those that fit the time limit (flows/budget.py)
    rank_members   per distinct window setting the window stage (tasks/windowing.py), then every
                   member's train stage (tasks/train.py) beside the statistical members' validate
                   stage (tasks/validate.py), then each network's validate stage: a SearchResult
                   with its leaderboard (best first, on the validation range only)
    plan_ensemble  the ensemble stage (tasks/validate.py ensemble_task): the best networks and every
                   statistical member packed into one model file; an EnsemblePlan, and the
                   leaderboard with the columns `forecasts` and `calibrates` (a new frame: the
                   search's own is left as it was)

The test range is the winner's alone: nothing here reads it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flows.budget import (
    data_facts, fit_budget, label_of, member_cost, policy_line, season_policy, statistical_estimate,
)
from tasks.components.cost import NetworkCost
from tasks.components.references import label
from tasks.components.search import candidates, estimated_windows, training_regime
from tasks.components.search import members as search_members
from tasks.config import PipelineConfig, members_of, nested, with_overrides
from tasks.errors import InputError
from tasks.runtime import offload
from tasks.runtime.stages import Run, StageRef, each
from tasks.train import train_task
from tasks.validate import ensemble_task, leaderboard, pooled_ranking, scoring_config, validate_task
from tasks.windowing import window_task

log = logging.getLogger("tasks.search")  # a "tasks" logger: its lines reach the run's Prefect logs

# Seconds of statsforecast work (the cost model's estimate of a search's statistical members) from
# which a local run may fit two models side by side in two worker processes (tasks/runtime/offload.py,
# widen): on the 145-series panel AutoETS and AutoTheta take about 50 s each. Below it one worker
# serves them in turn: a short monthly file's fits (under 2 s) gained nothing from a second one, which
# cost a second import of statsforecast beside the training (AirPassengers: 16.4 s of CPU, not 12).
SECOND_WORKER_FROM = 5.0


@dataclass(frozen=True)
class SearchResult:
    """Members trained and ranked on the validation range.

    members: their configs (those the time limit left unstarted dropped: `late`, their labels);
    windows: window entries per distinct window setting (WindowConfig -> one per bucket);
    models: each member's train entry (None: the train stage was not run);
    leaderboard: a DataFrame, best first (None: not scored); reference: the window entries of the
    longest window, which every member is scored through; statistical: the statistical members
    (names) with their season length (0: none), the seasons MSTL removes first, and their
    validate entries (statistical_scores).
    """

    members: tuple[PipelineConfig, ...]
    windows: dict
    models: tuple[StageRef, ...] | None
    leaderboard: Any  # pandas.DataFrame | None
    reference: tuple[StageRef, ...] | None
    statistical: tuple[str, ...] = ()
    season: int = 0
    statistical_scores: tuple[StageRef, ...] = ()
    mstl: tuple[int, ...] = ()
    late: tuple[str, ...] = field(default=())

    def best(self, k: int) -> list[int]:
        """The positions of the best `k` members (by validation MASE, ties in member order)."""
        return [int(i) for i in self.leaderboard["member"].iloc[:k]]

    def best_networks(self, k: int, order: list[int] | None = None) -> list[int]:
        """The positions of the best `k` networks (by validation MASE, or in `order`: member
        numbers best first; ties in member order)."""
        order = [int(x) for x in self.leaderboard["member"]] if order is None else order
        return [i for i in order if i < len(self.members)][:k]


@dataclass(frozen=True)
class EnsemblePlan:
    """A search's ensemble: the train entries of its networks (those that forecast first, then
    those that only calibrate the intervals), their configs and window entries (one tuple per
    network, one entry per bucket), how many forecast, the packed model file (the ensemble
    stage's entry), the combination rule of the networks, and the statistical members (names,
    their labels, and their validate entries: the forecasts they made, reused by the backtest)."""

    models: tuple[StageRef, ...]
    cfgs: tuple[PipelineConfig, ...]
    windows: tuple[tuple[StageRef, ...], ...]
    networks: int
    packed: StageRef | None
    combine: str
    statistical: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    made: tuple[StageRef, ...] = ()


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
    statistical_s = statistical_estimate(cfg, data, season, mstl)
    members, budget = fit_budget(run, members, data, statistical_s)
    budget["policy"] = policy_line(calendar, space, season, mstl)
    if sum(statistical_s) >= SECOND_WORKER_FROM:
        offload.widen(2)
    statistical = ", ".join(label(n, season, mstl) for n in cfg.search.statistical)
    log.info("search: %d configuration(s) x %d seed(s), ranked on the validation range; the best %d combined by "
             "the %s%s", len(space), cfg.search.seeds, min(cfg.search.top_k, len(members)), cfg.search.combine,
             f", weighted with {statistical} by 1 / MASE^2 before the test range" if statistical else "")
    return members, budget


def rank_members(run: Run, base: PipelineConfig, series, calendar: dict | None,
                 overrides: list[dict[str, Any]], statistical: tuple[str, ...] = (), deadline: float = 0.0
                 ) -> SearchResult:
    """Train every member (`overrides` on top of `base`) on the runner and score each on the
    validation range only, with the `statistical` members (a search's: AutoETS, AutoTheta,
    seasonal naive, fitted on the history before the validation range) beside them. Members with
    different window lengths share the val/cal/test targets of the longest (the window stage's
    anchor) and are scored on its windows. deadline: no member starts another epoch after it (a
    time.time(); 0: none)."""
    members = [run.resolve(with_overrides(base, nested(m))) for m in overrides]
    lengths = {m.window.seq_length for m in members}
    anchor = {"anchor": max(lengths)} if len(lengths) > 1 else {}
    windows: dict = {}
    for m in members:  # members share the window entries of equal window settings
        if m.window not in windows:
            windows[m.window] = run.map(window_task, each(series=series), window_cfg=m.window, calendar=calendar,
                                        **anchor)
    longest = max(windows, key=lambda w: w.seq_length)
    season = int(base.eval.season_length or (calendar or {}).get("season_length") or 0)  # 0: none (None skips a stage)
    mstl = season_policy(base, calendar)
    scoring = scoring_config(base.eval)
    trains = [{"model_cfg": m.model, "train_cfg": m.train.model_copy(update={"deadline": deadline}),
               "splits": windows[m.window]} for m in members]
    stats = [{"splits": windows[longest], "statistical": name, "season": season, **({"mstl": mstl} if mstl else {}),
              "eval_cfg": scoring} for name in statistical]
    # the statistical members need no network: they take turns with the networks in one wave (on the
    # local runner their fits run in the statistical worker process, tasks/runtime/offload.py, whose
    # GIL is its own); no network starts after the deadline. The progress display weighs each network
    # by the cost model's seconds an epoch and expected epochs (a long window's costs several short ones)
    data = data_facts(series)
    costs = [member_cost(m, data) for m in members]
    first = longest_first(costs)
    trained, stat_scores = run.map_together(
        [(train_task, [trains[i] for i in first], deadline), (validate_task, stats, 0.0)], interleave=True,
        work=[[(costs[i].epoch_seconds(), costs[i].expected_epochs()) for i in first], None])
    models = None if trained is None else tuple(trained[first.index(i)] for i in range(len(members)))
    late = tuple(label_of(m) for m, ref in zip(members, models or ()) if ref is None)  # not started by the deadline
    if late:
        kept = [i for i, ref in enumerate(models) if ref is not None]
        members, overrides, models = [members[i] for i in kept], [overrides[i] for i in kept], tuple(models[i] for i in kept)
    board = None
    if models is not None:  # rank on the validation range only; the test range is the winner's alone
        reference = {"reference": windows[longest]} if anchor else {}
        items = [{"splits": windows[m.window], "model": model, **reference} for m, model in zip(members, models)]
        net_scores = run.map(validate_task, items, eval_cfg=scoring)
        if net_scores is not None and stat_scores is not None:
            scores = (*net_scores, *stat_scores)
            board = leaderboard([*overrides, *({"forecaster": label(n, season, mstl)} for n in statistical)], scores,
                                [*models, *(None for _ in statistical)])
            return SearchResult(tuple(members), windows, models, board, windows[longest], tuple(statistical), season,
                                tuple(stat_scores), mstl, late)
    return SearchResult(tuple(members), windows, models, board, windows[longest], late=late)


def longest_first(costs: list[NetworkCost]) -> list[int]:
    """The order a wave starts its networks in: the longest expected first (the cost model's
    seconds; ties in the members' own order), so that the last to finish is a short one and no
    core idles behind a long member started last (longest-processing-time-first, Graham 1969).
    Which members run, their seeds and their bits do not depend on it: each trains alone on one
    thread. Measured on the half-hourly cost file: its two long naive-skip networks (170-260
    epochs) came last in the members' own order, and one core idled for the last 7-25 s of the wave."""
    return sorted(range(len(costs)), key=lambda i: -costs[i].seconds())


def plan_ensemble(run: Run, cfg: PipelineConfig, found: SearchResult) -> tuple[EnsemblePlan | None, Any]:
    """The ensemble of the best search.top_k networks and every statistical member (weighted
    before the test range: tasks.components.ensemble), cross-fitted: the networks that forecast
    are the best on the validation and calibration origins together, those whose residuals
    calibrate the intervals the best on the validation origins alone (tasks.validate.pooled_ranking).
    Runs the ensemble stage, which packs them into one model file. Returns the plan (None without
    trained and ranked members) and the leaderboard with the columns `forecasts` and `calibrates`
    (the statistical members do both): a new frame, `found`'s is left as it was."""
    if found.models is None or found.leaderboard is None:
        return None, found.leaderboard
    forecasting = found.best_networks(cfg.search.top_k, pooled_ranking(found.leaderboard))
    calibrating = found.best_networks(cfg.search.top_k)
    nets = forecasting + [i for i in calibrating if i not in forecasting]
    board = found.leaderboard.copy()  # the leaderboard says which members the ensemble uses for what
    member = board["member"]
    statistical = member >= len(found.members)
    board["forecasts"] = member.isin(forecasting) | statistical
    board["calibrates"] = member.isin(calibrating) | statistical
    models = tuple(found.models[i] for i in nets)
    windows = tuple(found.windows[found.members[i].window] for i in nets)
    positions = {} if nets == forecasting else {
        "networks": tuple(range(len(forecasting))), "calibration_networks": tuple(nets.index(i) for i in calibrating)}
    hybrid = {"statistical": found.statistical, "season": found.season, "reference": found.reference,
              "windows": tuple(w for ws in windows for w in ws), "scores": found.statistical_scores,
              **({"mstl": found.mstl} if found.mstl else {})}
    packed = run.stage(ensemble_task, eval_cfg=scoring_config(cfg.eval), models=models, combine=cfg.search.combine,
                       **(hybrid if found.statistical else {}), **positions)
    plan = EnsemblePlan(models, tuple(found.members[i] for i in nets), windows, len(forecasting), packed,
                        cfg.search.combine, found.statistical,
                        tuple(label(n, found.season, found.mstl) for n in found.statistical), found.statistical_scores)
    return plan, board
