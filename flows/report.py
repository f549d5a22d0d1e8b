"""The end of a run: the summary block, the Prefect artifacts, the run directory.

Everything here reads the stages' files (tasks/formats/); nothing is computed again. The wording
of each summary line comes from one small function (`settings_line`, `verdict_line`, ...), shared
by the console (flows/commands.py prints the block), the run's log and the markdown report.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator

from prefect import get_run_logger

from flows.options import FLAG_OF_FIELD
from flows.wording import gate_line, interval_words, ratio_phrase
from tasks.components.gate import baseline_names
from tasks.components.metrics import metric_text
from tasks.components.references import LABELS, label
from tasks.config import auto_settings, data_source
from tasks.formats.figures import FIGURES, figure_file, figure_title
from tasks.formats.forecast import FORECAST_FIGURE, FORECAST_FILE, range_words, read_forecast
from tasks.formats.scores import read_metrics
from tasks.promote import action_words
from tasks.runtime import progress, publish, store
from tasks.runtime.ledger import run_dir_of, write_run_dir
from tasks.runtime.stages import FROM_CHECKPOINT, Run

logging.getLogger("tasks").setLevel(logging.INFO)

SUMMARY_RECORD = "rnnflow_summary"  # marks the summary block's log record (the command line prints the block itself)


def finish(run: Run, promoted: dict | None = None, promote: bool = False, leaderboard=None,
           winner=None, search: tuple[str, ...] | None = None, budget: dict | None = None) -> dict:
    """Publish what the run did and where its outputs are; return the flow's summary.

    promoted: the promote task's summary when it ran; `promote`: whether it was asked for;
    leaderboard, winner: a sweep's or a search's ranking (a DataFrame, best first) and the best
    member's config; search: the ranking is a search's (its best members were combined), the
    statistical members among them ("ets": tasks.components.references) or (); budget: a search's
    time limit and season policy (rnn_flow.fit_budget), shown as the summary's budget and seasons lines.
    """
    publish.publish_table(publish.STAGES_KEY, run.table(), "Each stage: reused or recomputed, and why")
    # a sweep's summary describes its winner (the grid's settings are on the sweep line, not "auto")
    shown = winner if winner is not None and search is None else run.cfg
    grid = {k for k in leaderboard.columns if "." in k} if shown is not run.cfg else set()
    summary = {"run": run.name, "run_dir": str(run_dir_of(run)), "stages": run.table(),
               "settings": settings_of(run, shown, grid), "pipeline_seconds": 0.0}
    if "evaluate" in run.refs:
        summary.update(publish_results(run, shown, grid))
    if "forecast" in run.refs:
        summary["forecast"] = publish_forecast(run)
    if leaderboard is not None:
        summary["leaderboard"] = publish_leaderboard(run, leaderboard, search)
    if budget:
        summary["budget"] = {k: v for k, v in budget.items() if k != "deadline"}
    summary["promotion"] = promoted or {
        "action": "skipped",
        "reason": "no model was trained in this run" if promote else "promotion is off (promote=False)",
    }
    summary["promote"] = promote
    if link := run_link():
        summary["ui"] = link
    summary["pipeline_seconds"] = round(time.perf_counter() - run.started, 3)
    summary["largest_task_payload_bytes"] = run.largest_payload
    summary["driver_peak_rss_mb"] = round(store.peak_rss_mb(), 1)
    run_dir = write_run_dir(run, {"summary": summary})
    if leaderboard is not None:
        store.write_bytes(run_dir / LEADERBOARD_FILE, leaderboard.to_parquet(index=False))
        store.write_json(run_dir / "winner.json", winner.model_dump(mode="json"))
    store.write_json(run_dir / "promotion.json", summary["promotion"])
    # settings named by their command-line options here too: a served or deployed run's log shows the
    # block the command line prints
    get_run_logger().info("%s", "\n".join(summary_lines(summary, FLAG_OF_FIELD)), extra={SUMMARY_RECORD: True})
    publish.flush()  # the artifacts reach the server before the flow run ends (bounded: publish.FLUSH_S)
    FINISHED["summary"] = summary
    return summary


# The summary of the last run this process finished: the command line prints it even when the
# server could not take the flow run's final state (its outputs are all on disk by then).
FINISHED: dict[str, dict] = {}


def run_link() -> str | None:
    """This flow run's page in the Prefect UI; None without a UI (a temporary server has none)."""
    from prefect.runtime import flow_run
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui and flow_run.id else None


def settings_of(run: Run, cfg=None, exclude: set[str] = frozenset()) -> dict:
    """Where the series came from, the model's cell and every "auto" setting with what it became
    (in `cfg`, a sweep's winner; default the run's config), but those in `exclude` (set by a grid)."""
    cfg = cfg or run.cfg
    auto = {k: v for k, v in auto_settings(run.asked, cfg).items() if k not in exclude}
    return {"source": data_source(cfg), "cell": cfg.model.cell, "auto": auto}


# --------------------------------------------------------------------------- wording


def summary_lines(summary: dict, option_of: dict[str, str] | None = None) -> list[str]:
    """The summary block: stages, settings, verdict, gate, promotion, forecast, outputs (last).

    option_of: setting ("model.cell") -> command-line option ("--cell"), to name settings as typed.
    """
    lines = ["stages:", *[stage_line(r) for r in summary["stages"]]]
    if summary.get("settings", {}).get("auto"):
        lines.append(settings_line(summary["settings"], option_of))
    if "verdict" in summary:
        lines += [f"result: {summary['verdict']}", summary["gate"]]
        if "references" in summary:
            lines.append(summary["references"])
    if summary.get("promote"):
        lines.append(promotion_line(summary["promotion"]))
    if "forecast" in summary:
        lines.append(f"forecast: {summary['forecast']['rows']} rows from {summary['forecast']['first']}")
        if (summary["forecast"].get("outside") or {}).get("n"):  # never silent: a forecast far from its history
            lines.append(f"forecast warning: {range_words(summary['forecast']['outside'])}")
    if "leaderboard" in summary:
        lines.append(leaderboard_line(summary["leaderboard"]))
    if summary.get("budget"):
        lines += [line for line in budget_lines(summary["budget"], summary.get("pipeline_seconds")) if line]
    if summary.get("ui"):
        lines.append(f"ui: {summary['ui']}")
    lines.append(f"outputs: {summary['run_dir']}")
    return lines


def budget_lines(budget: dict, seconds: float | None = None) -> list[str | None]:
    """The search's time limit and what it skipped, and the season policy, in words:
    "time limit 99 s (auto for 9,900 points): 8 of 8 members trained (estimated 61 s; took 58 s)"."""
    policy = f"seasons: {budget['policy']}" if budget.get("policy") else None
    if not budget.get("limit"):
        return ["time limit: none (--time-limit 0)", policy] if budget.get("source") == "none" else [policy]
    source = (f"auto: 3 x the estimate + 60 s, {budget['points']:,} points" if budget["source"] == "auto"
              else "--time-limit")
    took = f"; took {seconds:.0f} s" if seconds else ""
    trained = budget["kept"] - len(budget.get("late") or ())
    line = (f"time limit {budget['limit']:.0f} s ({source}): {trained} of {budget['members']} members trained "
            f"(estimated {budget['estimate']:.0f} s{took})")
    if budget.get("skipped"):
        line += f"; skipped, not fitting: {', '.join(budget['skipped'])}"
    if budget.get("capped"):
        line += "; epochs capped: " + ", ".join(f"{k} at {v}" for k, v in budget["capped"].items())
    if budget.get("stretch", 1) > 1:
        line += f"; its deadline stretched {budget['stretch']:g}x by the machine's load"
    if budget.get("late"):
        line += f"; not started by the limit: {', '.join(budget['late'])}"
    if budget.get("stopped"):
        line += f"; stopped at the limit: {', '.join(budget['stopped'])}"
    return [line, policy]


def leaderboard_line(lb: dict) -> str:
    """A sweep's winner, or a search's ensemble, in one line."""
    mase = "undefined" if lb["val_mase"] is None else f"{lb['val_mase']:.4g}"
    if lb.get("kind") == "search":
        joined = lb.get("statistical") or []
        hybrid = f", weighted with {', '.join(joined)} by 1 / MASE^2 before the test range" if joined else ""
        best = lb.get("best", "network")
        nets = lb["members"] - len(joined)
        ranked = f"{nets} network(s)" + (f" and {len(joined)} statistical member(s)" if joined else "")
        return (f"search: {ranked} ranked on the validation range; the best {lb['combined']} "
                f"network(s) on the validation and calibration origins combined by the {lb['combine']}{hybrid} "
                f"(best member on the validation range: "
                f"{'a network' if best == 'network' else best}, MASE {mase}; rnn-leaderboard lists them all)")
    winner = ", ".join(f"{k}={v}" for k, v in lb["winner"].items())  # as the grid writes them: model.cell=gru
    return f"sweep: {lb['members']} members; winner {winner} (validation MASE {mase})"


def stage_line(row: dict) -> str:
    """One stage of the summary: reused or recomputed, why (against the previous run of the same
    data), and for a stage of several entries (buckets, members) how many were recomputed (and of
    them resumed from a checkpoint) and, for a sweep or a search, that the reason is the best model's
    entry."""
    notes = ["the best model's"] if row.get("featured") else []
    if row.get("entries", 0) > 1:
        done, resumed = row.get("recomputed", 0), row.get("resumed", 0)
        notes.append(f"{done} of {row['entries']} entries recomputed" if done else f"all {row['entries']} entries reused")
        if resumed:  # an interrupted search's members: the best model's own reason may not say it
            notes[-1] += f", {resumed} of them resumed {FROM_CHECKPOINT}"
    return f"  {row['stage']:<9} {row['action']:<10} {row['reason']}" + (f" ({'; '.join(notes)})" if notes else "")


def settings_line(settings: dict, option_of: dict[str, str] | None = None) -> str:
    """The "auto" settings of a run and what they became, e.g. `auto for a data file: --cell gru, ...`."""
    option_of = option_of or {}
    source = "a data file" if settings["source"] == "file" else "the generated series (the tutorial's)"
    values = ", ".join(f"{option_of.get(k, k)} {_value(v)}" for k, v in settings["auto"].items())
    return f"settings: auto for {source}: {values}"


def _value(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def model_name(cell: str, result: dict | None = None) -> str:
    """How figures and reports name the forecaster: RNN, GRU or LSTM, "ensemble of 3 (median)"
    when the backtest `result` is an ensemble's, or "hybrid of 3 networks (median) and AutoETS,
    seasonal naive (weights 0.5/0.3/0.2)" for a hybrid's."""
    if result and (ens := result.get("ensemble")):
        if stats := ens.get("statistical"):
            weights = "/".join(f"{w:.2f}" for w in ens.get("weights") or [])
            return (f"hybrid of {ens['members'] - len(stats)} network(s) ({ens['combine']}) and {', '.join(stats)}"
                    + (f" (weights {weights})" if weights else ""))
        return f"ensemble of {ens['members']} ({ens['combine']})"
    return cell.upper()


def verdict_line(result: dict, cell: str) -> str:
    """The run's result in one line: the model, how it trained, its test MSE (the tutorial's
    number) and its test MASE against every baseline's, each compared in MASE alone (one unit per
    comparison: "8.7x lower" is always a MASE ratio, as on the gate line)."""
    metrics, tr = result["metrics"], result["train"]
    trained = (f"{tr['epochs_run']} epochs{' (early stop)' if tr['stopped_early'] else ''}"
               if "ensemble" not in result else f"best member {tr['epochs_run']} epochs")
    model = metrics["model"]["mase"]

    def versus(name: str, words: str) -> str:
        value = metrics[name]["mase"]
        return f"{words} {metric_text(value)} ({ratio_phrase(model, value)})"

    lags = {k: result["season_length"] if k == "seasonal_naive" else k[15:] for k in metrics if k.startswith("seasonal")}
    others = [versus("naive", "naive")] + [versus(k, f"seasonal naive (season {lag})") for k, lag in lags.items()]
    others += [versus(k, k) for k in result.get("references", {}).get("names", []) if k in metrics]
    verdict = (f"{model_name(cell, result)} on {tr['device']} ({tr['threads']} thread(s)), {trained}; test MSE "
               f"{metrics['model']['mse']:.3e}; test MASE {metric_text(model)} vs {', '.join(others)}")
    if note := result.get("undefined", {}).get("mase"):
        verdict += f"; {note}"
    if (ens := result.get("ensemble")) and ens.get("mean_spread") is not None:
        verdict += f"; members' mean spread {ens['mean_spread']:.3g} naive steps"
    if result["horizon"] > 1:
        verdict += f"; averaged over {result['horizon']} leads"
    if result.get("frequency") not in (None, "1"):
        verdict += f"; inferred frequency {result['frequency']}"
    return verdict


def promotion_line(promotion: dict) -> str:
    """The champion/challenger decision in one line, worded as the log words it
    (tasks.promote.action_words)."""
    action = action_words(promotion["action"], bool(promotion.get("champion_now")))
    line = f"promotion: {action} ({promotion['reason']})"
    if promotion.get("champion_now"):
        now = "now" if promotion["action"] == "promoted" else "still"
        return f"{line}; the champion is {now} model {promotion['champion_now']} ({promotion['registry']})"
    return line + ("; there is no champion yet" if promotion["action"] != "skipped" else "")


def interval_line(result: dict) -> str:
    """Empirical coverage and mean width of each conformal interval on the test range, in one line."""
    iv = result["intervals"]
    parts = [interval_words(k, t) for k, t in iv["test"].items()]
    origins = iv.get("origins", "validation")  # "calibration": the range neither early stopping nor the search saw
    updated = ", updated with the test targets as they are observed" if iv.get("updated") else ""
    return (f"conformal intervals ({iv['n_calibration']} {origins} origins, {iv['method']}{updated}): "
            + "; ".join(parts))


# --------------------------------------------------------------------------- artifacts


def publish_results(run: Run, cfg=None, exclude: set[str] = frozenset()) -> dict:
    """Metrics table, one-line verdict, the baseline gate and (when figures ran) the markdown report;
    of the model of `cfg` (a sweep's winner; default the run's config)."""
    cfg = cfg or run.cfg
    result = read_metrics(run.refs["evaluate"].path)
    gate = result["gate"]
    metrics = model_first(result["metrics"])
    gate_text = gate_line(gate, result["horizon"], result["n_test"])
    publish.publish_table(publish.METRICS_KEY, publish.metrics_rows(metrics, metric_extras(result)),
                          f"Backtest metrics of run {run.name} (averages over {result['horizon']} lead(s)); {gate_text}")
    verdict = verdict_line(result, cfg.model.cell)
    refs = references_line(result)
    if "figures" in run.refs:
        lines = [verdict, gate_text, interval_line(result)] + ([refs] if refs else [])
        publish.publish_markdown(publish.REPORT_KEY, report(run, result, metrics, lines, cfg, exclude),
                                 f"Metrics and figures of run {run.name}")
    return {"metrics": metrics, "train": result["train"], "verdict": verdict, "gate": gate_text,
            "gate_passed": gate["passed"], **({"references": refs} if refs else {})}


def model_first(metrics: dict[str, dict]) -> dict[str, dict]:
    """The metrics with the model's row first, then the baselines (metrics.json sorts its keys)."""
    return {k: metrics[k] for k in ("model", *baseline_names(metrics))}


def report(run: Run, result: dict, metrics: dict[str, dict], lines: list[str], cfg=None,
           exclude: set[str] = frozenset()) -> str:
    """The rnn-report markdown: the result `lines` (verdict, gate, intervals, references), the
    `metrics` (model first), the settings (of `cfg`: see publish_results), every figure (the
    forecast's too)."""
    cfg = cfg or run.cfg
    figs = {figure_title(n): run.refs["figures"].file(figure_file(n)) for n in FIGURES
            if run.refs["figures"].file(figure_file(n)).is_file()}
    if "forecast" in run.refs:
        figs[figure_title("forecast")] = run.refs["forecast"].file(FORECAST_FIGURE)
    settings = settings_of(run, cfg, exclude)
    if settings["auto"]:
        lines = [*lines, settings_line(settings, FLAG_OF_FIELD)]
    title = f"{model_name(cfg.model.cell, result)} forecast report — {run.name}"
    return publish.report_markdown(title, lines, metrics, figs, config=settings_table(cfg),
                                   auto=set(settings["auto"]))


def settings_table(cfg) -> dict:
    """The resolved config as the report lists it: the data section holds only what the source uses
    (the file's fields for a file, the generator's for the sine)."""
    from tasks.generate import FILE_FIELDS

    config = cfg.model_dump(mode="json")
    file = data_source(cfg) == "file"
    config["data"] = {k: v for k, v in config["data"].items() if (k in FILE_FIELDS) == file}
    return config


def metric_extras(result: dict) -> dict[str, dict]:
    """Extra columns of the rnn-metrics table: interval coverage and width (model), the gate (its
    verdict on the model's row; "baseline" on the one it faced, before the test range), and each
    baseline's model_ratio: model / baseline on the test range, on the gate's metric (MASE unless
    undefined; < 1: the model is better)."""
    test, gate, metrics = result["intervals"]["test"], result["gate"], result["metrics"]
    model = {c: v for k, t in test.items() for c, v in ((f"coverage_{k}", "zero width" if t.get("zero_width") else
                                                         t["coverage"]), (f"width_{k}", t["mean_width"]))}
    model["gate"] = "tie (passed)" if gate.get("tie") else "passed" if gate["passed"] else "failed"
    metric = gate.get("metric") or "mase"
    mine = metrics["model"].get(metric)
    extras = {name: {"model_ratio": (mine / m[metric]) if mine is not None and m.get(metric) else None}
              for name, m in metrics.items() if name != "model"}
    extras.setdefault(gate["baseline"], {})["gate"] = "baseline"
    return {"model": model, **extras}


def references_line(result: dict) -> str | None:
    """Which statistical references ran, on which season, how they were refitted, and the series
    where one fell back to the naive forecast; None when none ran."""
    refs = result.get("references") or {}
    if not refs.get("names"):
        return None
    mstl = tuple(refs.get("mstl") or ())
    season = (f"seasons {', '.join(map(str, mstl))} removed by MSTL first" if mstl else
              f"season {refs['season_length']}" if refs.get("season_length") else "no season")
    names = {n: label(n, refs.get("season_length"), mstl) if n in LABELS else n for n in refs["names"]}
    line = f"references {', '.join(names.values())} ({season}): {refs['refit']}"
    for name, series in (refs.get("fallback") or {}).items():
        first, why = next(iter(series.items()))
        line += (f"; {names.get(name, name)} fell back to the naive forecast on {len(series)} series "
                 f"(first {first!r}: {why})")
    return line


def publish_forecast(run: Run) -> dict:
    """The rnn-forecast table artifact; returns where the forecast is and what it starts with."""
    ref = run.refs["forecast"]
    fc = read_forecast(ref.path)
    publish.publish_table(publish.FORECAST_KEY, publish.table_rows(fc), f"Forecast past the end of each series, run {run.name}")
    when = fc["timestamp"].iloc[0] if "timestamp" in fc else fc["step"].iloc[0]
    if hasattr(when, "strftime") and when == when.normalize() and when.tz is None:
        when = when.strftime("%Y-%m-%d")  # a date, without a midnight time (times keep their zone's offset)
    outside = ref.manifest()["meta"].get("outside") or {"n": 0, "series": []}
    return {"rows": len(fc), "first": str(when), "file": str(ref.file(FORECAST_FILE)),
            "figure": str(ref.file(FORECAST_FIGURE)), "outside": outside}


LEADERBOARD_FILE = "leaderboard.parquet"


def publish_leaderboard(run: Run, board, search: tuple[str, ...] | None = None) -> dict:
    """The rnn-leaderboard table artifact (members ranked by validation MASE); the best member's
    settings, its validation MASE and (for a search) how many members the ensemble combines and
    which of them are statistical (`search`: their names, "ets", ...)."""
    what = "Search" if search is not None else "Sweep"
    publish.publish_table(publish.LEADERBOARD_KEY, publish.table_rows(board.drop(columns=["model_entry",
                                                                                    "scores_entry"])),
                          f"{what} members of run {run.name}, ranked by the model's MASE on the validation range")
    nets = board[board["forecaster"] == "network"] if "forecaster" in board else board
    top = nets.iloc[0] if len(nets) else board.iloc[0]  # the best network's settings
    settings = {k: top[k] for k in board.columns if "." in k}
    out = {"kind": what.lower(), "members": len(board), "winner": {k: _plain(v) for k, v in settings.items()},
           "val_mase": _float_or_none(board.iloc[0]["val_mase"]),
           "best": str(board.iloc[0]["forecaster"]) if "forecaster" in board else "network"}
    if search is not None:
        out["combined"] = min(run.cfg.search.top_k, len(nets))
        out["combine"] = run.cfg.search.combine
        out["statistical"] = [str(f) for f in board.sort_values("member")["forecaster"] if f != "network"]
    return out


def _plain(v: object) -> object:
    """A leaderboard cell as JSON holds it: None for <NA>, a Python int, float, bool or str."""
    import pandas as pd

    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def _float_or_none(x: object) -> float | None:
    """A leaderboard number as JSON holds it: None when it is missing (an undefined MASE: a constant
    training range) or not finite."""
    x = _plain(x)
    if x is None:
        return None
    v = float(x)  # type: ignore[arg-type]
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- the console


class _ConsoleFilter(logging.Filter):
    """On the console: no summary record (the command line prints the block itself), no traceback
    for a failure the command line reports as one line, and, while the progress display is live
    on a terminal, every other record printed above it rather than through it."""

    def __init__(self, known: tuple[type[BaseException], ...], handler: logging.Handler) -> None:
        super().__init__()
        self.known, self.handler = known, handler

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_RECORD, False):
            return False
        if self.known and record.exc_info and isinstance(record.exc_info[1], self.known):
            record.exc_info, record.exc_text = None, None
        shown = progress.active()
        if shown is not None and shown.live and record.levelno >= self.handler.level:
            shown.emit(self.handler.format(record))
            return False
        return True


CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"  # Prefect's console handler level (logging.yml)


@contextlib.contextmanager
def quiet_console(debug: bool, known: tuple[type[BaseException], ...], verbose: bool = False) -> Iterator[None]:
    """The console of a command-line run, while the block runs: Prefect's console handlers (the
    root logger's, see its logging.yml) show warnings and errors only, unless `verbose` (every
    stage's and member's INFO lines: epochs, validation scores, task states, which the run's
    Prefect logs keep either way); a known failure's traceback only with `debug`. Worker
    processes a run starts (Dask's) inherit the level through Prefect's setting, unless the
    user set it."""
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    filters = [(h, _ConsoleFilter(() if debug else known, h)) for h in handlers]
    levels = [h.level for h in handlers]
    env = os.environ.get(CONSOLE_LEVEL_ENV)
    for h, f in filters:
        h.addFilter(f)
        if not verbose:
            h.setLevel(max(h.level, logging.WARNING))
    if not verbose and env is None:
        os.environ[CONSOLE_LEVEL_ENV] = "WARNING"
    try:
        yield
    finally:
        for (h, f), level in zip(filters, levels):
            h.removeFilter(f)
            h.setLevel(level)
        if env is None:
            os.environ.pop(CONSOLE_LEVEL_ENV, None)
