"""A search's time limit and season policy, decided once the series are read (issue 26).

    fit_budget            the members that fit --time-limit, by the cost model (tasks/components/cost.py)
    statistical_estimate  the seconds of statsforecast work a search does (the wave's, the backtest's)
    apply_season_policy   what sub-daily data's long seasons change: MSTL first, AutoTheta left out
    policy_line           the summary's "seasons:" line

The numbers live in tasks/components/cost.py (the cost model, the plan) and search.py (the space,
the training regime); this module reads them off the resolved config and the series' metadata.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from tasks.components.cost import NetworkCost, auto_time_limit, search_plan, statistical_seconds
from tasks.components.references import mstl_seasons, policy_words
from tasks.components.search import estimated_windows, priority
from tasks.config import EvalConfig, PipelineConfig, SearchConfig, nested, with_overrides
from tasks.runtime.stages import Run

log = logging.getLogger("tasks.search")  # a "tasks" logger: its lines reach the run's Prefect logs


def policy_line(calendar: dict | None, space: list[dict[str, Any]], season: int | None, mstl: tuple[int, ...]
                ) -> str | None:
    """How the run treats its seasons, in words for the summary (None without a season): the
    networks' windows and reach, and the statistical members' policy (references.policy_words)."""
    if not season:
        return None
    seasons = list((calendar or {}).get("seasons") or [season])
    lengths = sorted({c["window.seq_length"] for c in space if "window.seq_length" in c})
    reach = sorted({c.get("model.recurrent_steps", 0) for c in space} - {0})
    nets = f"windows of {', '.join(map(str, lengths))} points" if lengths else "the windows asked for"
    if reach:
        nets += f", the recurrent layers reading at most the last {reach[0]} (the seasonal skip reads the whole window)"
    more = ""
    if len(seasons) == 1 and (calendar or {}).get("frequency"):
        from tasks.components.frequency import season_lengths

        extra = [m for m in season_lengths(calendar["frequency"])[1:] if m not in seasons]
        if extra:
            more = f"; season {extra[0]} left out: the shortest series holds fewer than two of its cycles"
    return (f"{', '.join(map(str, seasons))}: networks on {nets}; statistical members: "
            f"{policy_words(season, mstl)}{more}")


def label_of(m: PipelineConfig) -> str:
    """A member in a few words, as the budget names it: "gru-64 L48 seed 43"."""
    reach = m.model.recurrent_steps
    read = f"/{reach}" if 0 < reach < m.window.seq_length else ""
    return f"{m.model.cell}-{m.model.hidden_size} L{m.window.seq_length}{read} {m.model.skip} skip seed {m.train.seed}"


def data_facts(series) -> dict:
    """What the cost model reads of the ingested series: points, n_series, shortest (over buckets)."""
    metas = [ref.manifest()["meta"] for ref in series or () if ref.manifest()["meta"]["n_series"]]
    n_series = sum(m["n_series"] for m in metas)
    return {"n_series": n_series, "shortest": min((m["shortest"] for m in metas), default=0),
            "points": sum(m.get("points", m["n_series"] * m["shortest"]) for m in metas)}


def fit_budget(run: Run, members: list[dict[str, Any]], data: dict, statistical: tuple[float, float]
               ) -> tuple[list[dict[str, Any]], dict]:
    """The members that fit the run's time limit (search.time_limit; auto: auto_time_limit of the
    data's points for a file), each with its epoch cap, and the budget in words: the plan is made
    from the cost model (tasks/components/cost.py) before anything trains, so the same data and
    settings always train the same members; training itself stops at the limit (the members'
    deadline). Members that do not fit are skipped and named; the budget dict holds the limit, its
    source, the estimate, the skipped members' labels and the deadline (a time.time(); 0: none).
    statistical: the search's statsforecast seconds (statistical_estimate)."""
    cfg = run.cfg
    asked = cfg.search.time_limit
    if asked != "auto" and not asked:
        return members, {"limit": 0.0, "source": "none"}
    costs = [member_cost(run.resolve(with_overrides(cfg, nested(m))), data) for m in members]
    validation, test = statistical
    order = priority(members, cfg.search.seeds)
    if asked == "auto":  # headroom over what the whole search is estimated to take on this data
        limit = auto_time_limit(search_plan(costs, order, float("inf"), cfg.runner.workers, validation, test)[0].estimate)
    else:
        limit = float(asked)
    plan, networks_end = search_plan(costs, order, limit, cfg.runner.workers, validation, test)
    kept = [{**members[i], **({"train.epochs": plan.epochs[i]} if plan.epochs[i] < plan.caps[i] else {})}
            for i in sorted(plan.kept)]  # in the members' own order
    # the default limit's deadline stretches with the machine's load: it is there for what the cost
    # model did not foresee, not for other people's work (which would change this run's forecasts)
    stretch = load_stretch() if asked == "auto" else 1.0
    deadline = time.time() + max(1.0, stretch * networks_end - (time.perf_counter() - run.started))
    budget = {"limit": limit, "source": "auto" if asked == "auto" else "asked", "points": data["points"],
              "stretch": round(stretch, 2),
              "estimate": round(plan.estimate, 1), "members": len(members), "kept": len(kept),
              "skipped": [costs[i].label for i in plan.skipped],
              "capped": {costs[i].label: plan.epochs[i] for i in plan.kept if plan.epochs[i] < plan.caps[i]},
              "deadline": deadline}
    if plan.skipped or budget["capped"]:
        log.info("search: time limit %.0f s (%s): %d of %d members fit (estimated %.0f s)%s%s", limit,
                 budget["source"], len(kept), len(members), plan.estimate,
                 f"; skipped {', '.join(budget['skipped'])}" if plan.skipped else "",
                 f"; epochs capped: {', '.join(f'{k} {v}' for k, v in budget['capped'].items())}"
                 if budget["capped"] else "")
    return kept, budget


def statistical_estimate(cfg: PipelineConfig, data: dict, season: int | None, mstl: tuple[int, ...]
                         ) -> tuple[float, float]:
    """Seconds of statsforecast work a search's run does, by the cost model: (its statistical
    members' validation, calibration and test forecasts, made in the networks' wave by their
    validate tasks; the backtest's references that are no member, after it)."""
    lengths = [data["points"] // max(1, data["n_series"])] * data["n_series"]
    n = lengths[0] if lengths else 0
    origins = min(int(0.08 * n), cfg.eval.score_origins or n) + cfg_calibration(cfg) + int(0.2 * n)
    validation = sum(statistical_seconds(name, lengths, origins, fits=3, season=season, mstl=mstl)
                     for name in cfg.search.statistical)
    test = sum(statistical_seconds(name, lengths, int(0.2 * n), season=season, mstl=mstl)
               for name in set(cfg.eval.references) - set(cfg.search.statistical))
    return validation, test


def load_stretch() -> float:
    """How much slower than the cost model's quiet machine this one runs now, at least 1: the load
    average over the last minute per core (a shared machine at load 8 on 2 cores: 4)."""
    try:
        return max(1.0, os.getloadavg()[0] / max(1, os.cpu_count() or 1))
    except OSError:  # no load average on this platform
        return 1.0


def cfg_calibration(cfg: PipelineConfig) -> int:
    """The calibration origins per series the resolved config asks for (an int)."""
    return cfg.window.calibration if isinstance(cfg.window.calibration, int) else 20


def member_cost(m: PipelineConfig, data: dict) -> NetworkCost:
    """The cost model's view of one resolved member (tasks.components.cost.NetworkCost)."""
    windows, val = estimated_windows(data["points"], data["n_series"], m.window.seq_length, m.window.horizon,
                                     m.window.train_fraction, m.window.val_fraction)
    read = m.model.recurrent_steps if 0 < m.model.recurrent_steps < m.window.seq_length else m.window.seq_length
    val = min(val, m.train.val_windows) if m.train.val_windows else val
    return NetworkCost(label_of(m), m.model.cell, m.model.hidden_size, read, windows, val, m.train.batch_size,
                       m.train.steps_per_epoch, int(m.train.epochs), int(m.train.patience))


def apply_season_policy(run: Run, calendar: dict | None) -> PipelineConfig:
    """The run's config once the data's seasons are known: on sub-daily data (season_policy: MSTL
    first), AutoTheta leaves the default statistical members and references. After MSTL removes
    the seasons, AutoTheta without a season forecasts as AutoETS does (on the hourly benchmark
    file their forecasts differed by at most 0.01% and their MASE not in the third decimal) at
    ten times the cost (1.7 s a fit and 6.6 ms an origin on 2,300 hourly points, against 0.15 s
    and 0.3 ms). Settings the user gave (--references, --statistical-members, --gate-baseline
    theta) are kept. Sets and returns run.cfg."""
    if not season_policy(run.cfg, calendar):
        return run.cfg
    cfg, update = run.cfg, {}
    if run.asked.eval.references == EvalConfig().references and cfg.eval.gate_baseline != "theta":
        update["eval"] = {"references": tuple(n for n in cfg.eval.references if n != "theta")}
    if run.asked.search.statistical == SearchConfig().statistical:
        update["search"] = {"statistical": tuple(n for n in cfg.search.statistical if n != "theta")}
    if update:
        run.cfg = with_overrides(cfg, update)
    return run.cfg


def season_policy(cfg: PipelineConfig, calendar: dict | None) -> tuple[int, ...]:
    """The seasons MSTL removes before the statistical members and references forecast (sub-daily
    data: tasks.components.references.mstl_seasons), or () for the plain models."""
    cal = calendar or {}
    return mstl_seasons(cal.get("frequency"), tuple(cal.get("seasons") or ()), cfg.eval.season_length)
