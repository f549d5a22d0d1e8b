"""Sweeps and searches: score each member's model on the validation range and rank them (never
the test range).

    validate   one entry per sweep member: the rolling-origin backtest of its model over the
               validation origins of every series (scores.json); for a search, also one per
               statistical member (AutoETS, AutoTheta, seasonal naive, fitted on the history
               before the validation range)

    ensemble   one entry for a search: the top networks' model files, the statistical members'
               names and the hybrid's weights (found on the validation and calibration
               origins; the calibration weights on the validation origins alone) packed into one
               model.pt (tasks/formats/model.py: what promotion judges and the run directory
               keeps), and the best network's training history

The leaderboard (`leaderboard`) ranks members by their validation MASE; the winner (or the
ensemble of the best) is then scored on the test range by the usual evaluate stage and judged
by the usual gate.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd
from prefect import task

from tasks.components.backtest import validation_scores
from tasks.components.metrics import metric_text
from tasks.components.ensemble import Ensemble, Member, inverse_error_weights
from tasks.components.references import Statistical, label
from tasks.components.split import Split, concat_splits
from tasks.config import EvalConfig
from tasks.formats.history import HISTORY_FILE
from tasks.formats.ensemble import save_ensemble
from tasks.formats.model import MODEL_FILE, load_model
from tasks.formats.scores import read_validation, write_member_forecasts, write_validation
from tasks.formats.window import read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("validate", phase="train", packages=("numpy", "torch", "statsforecast"),
                  run_only=frozenset({"chunk_size"}))
ENSEMBLE = StageSpec("ensemble", phase="train", packages=("numpy", "torch"), run_only=frozenset({"chunk_size"}),
                     files=(MODEL_FILE, HISTORY_FILE))


def scoring_config(cfg: EvalConfig) -> EvalConfig:
    """What validation and the hybrid's weights read of `cfg` (the season length, the origins per
    series they score, and the chunk size, which changes no result), and nothing else: passed as their stages' eval_cfg, so that a
    changed interval level, reference, gate baseline or refit policy, which only the test range's
    evaluation reads, recomputes no validation and no ensemble."""
    return EvalConfig(season_length=cfg.season_length, chunk_size=cfg.chunk_size, score_origins=cfg.score_origins)


@task(**stage_task(STAGE))
def validate_task(plan, eval_cfg: EvalConfig, splits: tuple[store.StageRef, ...], model: store.StageRef | None = None,
                  reference: tuple[store.StageRef, ...] | None = None, statistical: str | None = None,
                  season: int = 0, mstl: tuple[int, ...] = ()) -> dict:
    """Score one member over the validation origins of every bucket; write scores.json (with the
    member's MASE on the calibration origins too, when the split holds some).

    model: the member's train entry, reading the series through `splits` (its window entries,
    one per bucket); statistical: instead of a network, a statistical member ("ets", "theta",
    "snaive": tasks.components.references.Statistical, season length `season`, 0 none, and the
    seasons `mstl` MSTL removes first on sub-daily data) fitted on the history before the
    validation origins of `splits`; it also forecasts the calibration and test origins once, into
    forecasts.parquet, for the backtest (its test forecasts never reach a score here: the test
    range is the backtest's alone; made here, they share the networks' wave). reference: a search's window
    entries of its longest window, whose validation targets and MASE scales every member is
    scored on (the member reads them through its own window and scalers); None: the member's own.
    """

    def compute(w: store.EntryWriter) -> dict:
        values, sp = concat_splits([read_window(ref.path) for ref in splits])
        if statistical is not None:
            forecaster = Statistical(statistical, season, tuple(mstl))
            trained = {"epochs_run": 0, "best_epoch": None, "stopped_early": False}
        else:
            net, record = load_model(model.path)
            forecaster, trained = net, record.trained
            spec = record.network  # which member, in the log: its network and its train entry (seeds differ there)
            name = (f"{spec.cell}-{spec.hidden_size} L{record.seq_length}{f' skip{spec.skip_lag}' if spec.skip_lag else ''}"
                    f" (train entry {model.key[:8]})")
        if reference is not None:
            values, ref = concat_splits([read_window(r.path) for r in reference])
            if statistical is None:
                forecaster = Ensemble([Member(net, sp)], chunk=eval_cfg.chunk_size)
            sp = ref
        scores = validation_scores(forecaster, values, sp, eval_cfg.season_length, eval_cfg.chunk_size,
                                   most=eval_cfg.score_origins)
        if sp.count("cal"):  # what a hybrid's forecasting weights add (hybrid_weights); never ranked by
            cal = validation_scores(forecaster, values, sp, eval_cfg.season_length, eval_cfg.chunk_size, part="cal",
                                    most=eval_cfg.score_origins)
            scores["calibration"] = {"mase": cal["metrics"]["model"]["mase"], "mae": cal["metrics"]["model"]["mae"],
                                     "n": cal["n_val"]}
        scores["train"] = {k: trained.get(k) for k in ("epochs_run", "best_epoch", "stopped_early")}
        write_validation(w.dir, scores)
        if statistical is not None:  # its calibration and test forecasts, made once: the backtest reads them
            made = forecaster.table(values, sp)
            if made is not None:
                write_member_forecasts(w.dir, made)
        log.info("validate: %s MASE %s on %d validation origins",
                 label(statistical, season, tuple(mstl)) if statistical else name,
                 metric_text(scores["metrics"]["model"]["mase"], ".4f"), scores["n_val"])
        return {"mase": scores["metrics"]["model"]["mase"]}

    return build(plan, compute)


def leaderboard(members: Sequence[dict], scores: Sequence[store.StageRef], models: Sequence[store.StageRef | None]
                ) -> pd.DataFrame:
    """One row per member, best first: what forecasts ("network", or a statistical member's
    label, "AutoETS"), its settings (a column each, typed: typed_column), validation metrics of
    the member and the baselines, the member's MASE on the calibration origins (cal_mase, over
    n_cal origins; None without any: never ranked by, see pooled_ranking), epochs, and the entries
    of its model (none for a statistical member) and scores. Ranked by validation MASE, then
    validation MAE (all that ranks where MASE is undefined); ties keep the members' order."""
    rows = []
    for i, (member, ref, model) in enumerate(zip(members, scores, models)):
        s = read_validation(ref.path)
        m = s["metrics"]
        settings = {k: v for k, v in member.items() if k != "forecaster"}
        rows.append({"member": i, "forecaster": member.get("forecaster", "network"), **settings,
                     "val_mase": m["model"]["mase"], "val_mae": m["model"]["mae"], "val_rmse": m["model"]["rmse"],
                     "cal_mase": (s.get("calibration") or {}).get("mase"),
                     "n_cal": (s.get("calibration") or {}).get("n", 0),
                     "naive_mase": m["naive"]["mase"],
                     "seasonal_naive_mase": m.get("seasonal_naive", {}).get("mase", np.nan),
                     "n_val": s["n_val"], "epochs_run": s["train"]["epochs_run"],
                     "model_entry": str(model.path) if model is not None else "", "scores_entry": str(ref.path)})
    board = pd.DataFrame(rows)
    for key in {k for m in members for k in m if k != "forecaster"}:
        board[key] = typed_column(board[key])
    # by validation MASE, then MAE (what ranks members where MASE is undefined: a constant training range)
    order = np.lexsort((board["member"].to_numpy(), np.nan_to_num(board["val_mae"].to_numpy(float), nan=np.inf),
                        np.nan_to_num(board["val_mase"].to_numpy(float), nan=np.inf)))
    return board.iloc[order].reset_index(drop=True).assign(rank=lambda d: np.arange(1, len(d) + 1))


def seed_noise(board: pd.DataFrame | None) -> dict:
    """How much a network's score moves with its seed alone: the median, over the configurations
    trained with several seeds (a search's --search-seeds, a grid's train.seed), of the relative
    difference between its seeds' MASE ((max - min) / mean) on the origins the gate is decided on
    (the calibration origins where every network was scored there, else the validation origins).
    {"relative": that, or None when no configuration has two seeds, "configurations": how many
    were measured, "origins": "calibration" | "validation" | None}.

    The gate (tasks.components.gate.decide_gate) calls a difference smaller than this, times
    the forecaster's weight on its networks, a tie: two seeds of the same network differ by as much.
    """
    out = {"relative": None, "configurations": 0, "origins": None}
    if board is None or "train.seed" not in board:
        return out
    nets = board[board["forecaster"] == "network"] if "forecaster" in board else board
    calibrated = "cal_mase" in nets and len(nets) and bool((nets["n_cal"] > 0).all())
    column = "cal_mase" if calibrated else "val_mase"
    settings = [c for c in nets.columns if "." in c and c != "train.seed"]
    groups = nets.groupby(settings, dropna=False, sort=False) if settings else [(None, nets)]
    spreads = []
    for _, g in groups:
        v = pd.to_numeric(g[column], errors="coerce").to_numpy(float)
        v = v[np.isfinite(v)]
        if len(v) >= 2 and v.mean() > 0:
            spreads.append(float((v.max() - v.min()) / v.mean()))
    if spreads:
        out = {"relative": float(np.median(spreads)), "configurations": len(spreads),
               "origins": "calibration" if calibrated else "validation"}
    return out


def typed_column(values: pd.Series) -> pd.Series:
    """A leaderboard settings column with its values' own type, missing ones (a statistical
    member's window, say) as <NA>: Int64, Float64, boolean or string. A column whose values mix
    kinds (a number and a word) becomes text, which is how Parquet can hold it."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    kinds = {bool if isinstance(v, bool) else float if isinstance(v, (int, float)) else type(v) for v in present}
    if len(kinds) > 1:
        values = values.map(lambda v: pd.NA if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
    return values.astype(object).convert_dtypes()


Weights = tuple[float, ...]


def hybrid_weights(values: np.ndarray, reference: Split, forecasting: list[Member], calibrating: list[Member],
                   combine: str, statistical: list[dict], cfg: EvalConfig) -> tuple[Weights, Weights, float | None]:
    """The weights of a hybrid ensemble (networks, each statistical member), inversely proportional
    to each part's squared MASE (tasks.components.ensemble.inverse_error_weights), cross-fitted:

        calibration weights   of the `calibrating` networks (chosen on the validation origins),
                              from the validation origins of `reference` only: the hybrid whose
                              residuals on the calibration origins calibrate the intervals has
                              seen nothing of them
        forecasting weights   of the `forecasting` networks (chosen on the validation and
                              calibration origins: pooled_ranking), from both ranges together
                              (the MASE of each part pooled over both), the weights of every
                              other forecast

    (the forecasting weights, the calibration weights, the forecasting networks' combined
    validation MASE). Without calibration origins both are the validation range's. statistical:
    each statistical member's scores.json content (validate_task). Neither ever reads the test range.

    Why: the validation range of a short series is a handful of origins (5 on a yearly series of
    98 points), too few to tell a network that fits them by chance from one that forecasts. On
    the quality panel (benchmarks/RESULTS.md, 3 seeds) pooling the calibration origins moved the
    geometric-mean MASE ratio to AutoETS from 0.950 to 0.938 at one step and from 0.902 to 0.892
    at one season, and the intervals' test coverage by under 0.01.
    """
    def scores(networks: list[Member], part: str) -> dict:
        return validation_scores(Ensemble(networks, combine, cfg.chunk_size), values, reference, cfg.season_length,
                                 cfg.chunk_size, part=part, most=cfg.score_origins)

    val = scores(calibrating, "val")
    metric = weighing_metric([val, *statistical])
    stat_val = [s["metrics"]["model"][metric] for s in statistical]
    calibration = inverse_error_weights([val["metrics"]["model"][metric], *stat_val])
    if [id(m) for m in forecasting] != [id(m) for m in calibrating]:
        val = scores(forecasting, "val")
    mase = val["metrics"]["model"]["mase"]
    if not reference.count("cal"):
        return inverse_error_weights([val["metrics"]["model"][metric], *stat_val]), calibration, mase
    cal = scores(forecasting, "cal")
    pooled = [pooled_mase([(val["metrics"]["model"][metric], val["n_val"]),
                           (cal["metrics"]["model"][metric], cal["n_val"])])]
    for s in statistical:
        c = s.get("calibration") or {}
        pooled.append(pooled_mase([(s["metrics"]["model"][metric], s["n_val"]), (c.get(metric), c.get("n", 0))]))
    return inverse_error_weights(pooled), calibration, mase


def weighing_metric(scored: Sequence[dict]) -> str:
    """The error a hybrid's weights are inversely proportional to: "mase", or "mae" when no part
    has a defined validation MASE (a constant or all-zero training range has no naive error to
    scale by, Hyndman & Koehler 2006): the parts are then weighed by their absolute errors on the
    same targets, so a part that forecasts a constant series exactly takes all the weight.
    scored: validation_scores results (the networks' combination, each statistical member's)."""
    defined = [s["metrics"]["model"]["mase"] for s in scored]
    return "mase" if any(m is not None and np.isfinite(m) for m in defined) else "mae"


def pooled_ranking(board: pd.DataFrame) -> list[int]:
    """The leaderboard's members (their "member" numbers) best first by their MASE pooled over
    the validation and calibration origins (pooled_mase; the validation MASE alone for a member
    without calibration scores), ties in leaderboard order: how a search chooses the networks
    that forecast. The leaderboard's own order (validation only) chooses those that calibrate
    the intervals, so the calibration origins stay unseen by what calibrates (hybrid_weights).

    Why: on a short series the validation range is a handful of origins (5 on LakeHuron, 98
    yearly points), and networks that fit them by chance rank first. On LakeHuron (one seed) the
    three best networks on the validation range scored MASE 0.53-0.61 there and 1.59-2.07 on the
    15 calibration origins, where the networks that forecast the lake's mean reversion scored
    1.04-1.09.
    """
    pooled = [pooled_mase([(r.val_mase, r.n_val), (r.cal_mase, r.n_cal)]) if "cal_mase" in board else r.val_mase
              for r in board.itertuples()]
    key = [np.inf if p is None or not np.isfinite(p) else p for p in pooled]
    order = sorted(range(len(board)), key=lambda i: key[i])
    return [int(board["member"].iloc[i]) for i in order]


def pooled_mase(parts: Sequence[tuple[float | None, int]]) -> float | None:
    """The MASE over several origin ranges from each range's (MASE, origins): their mean weighted
    by origins (exact, every origin having the same leads). A range whose MASE is undefined
    (None or not finite) is left out; None when none is defined."""
    usable = [(float(m), n) for m, n in parts if m is not None and np.isfinite(m) and n > 0]
    if not usable:
        return None
    return sum(m * n for m, n in usable) / sum(n for _, n in usable)


@task(**stage_task(ENSEMBLE))
def ensemble_task(plan, eval_cfg: EvalConfig, models: tuple[store.StageRef, ...], combine: str,
                  statistical: tuple[str, ...] = (), season: int = 0, mstl: tuple[int, ...] = (),
                  windows: tuple[store.StageRef, ...] = (),
                  reference: tuple[store.StageRef, ...] = (), scores: tuple[store.StageRef, ...] = (),
                  networks: tuple[int, ...] = (), calibration_networks: tuple[int, ...] = ()) -> dict:
    """Pack the ensemble's members (network train entries, best first, and the `statistical`
    members' names with season length `season`: 0 none) into one model.pt, combined by
    `combine`; keep the best network member's history.json (the loss figure's). Return the
    StageRef. networks, calibration_networks: the positions in `models` of the networks that
    forecast and of those whose residuals calibrate the intervals (pooled_ranking; none: all).

    With statistical members the ensemble is a hybrid (tasks.components.ensemble): its weights
    come from the validation and calibration origins, never the test range, and its calibration
    weights from the validation origins only (hybrid_weights), the networks' combination scored
    through `windows` (each network's window entries, one per bucket of `reference`, network by network)
    on the targets of `reference` (the longest window's entries), each statistical member's
    score read from its validate entry in `scores`.
    """

    def compute(w: store.EntryWriter) -> dict:
        members = [Statistical(n, season, tuple(mstl)) for n in statistical]
        weights, calibration, net_mase = (), (), None
        forecasting = list(networks or range(len(models)))
        if statistical:
            values, ref = concat_splits([read_window(r.path) for r in reference])
            nb = len(reference)
            nets = [Member(load_model(m.path)[0], concat_splits([read_window(x.path) for x in
                                                                  windows[i * nb:(i + 1) * nb]])[1])
                    for i, m in enumerate(models)]
            weights, calibration, net_mase = hybrid_weights(
                values, ref, [nets[i] for i in forecasting], [nets[i] for i in calibration_networks or forecasting],
                combine, [read_validation(r.path) for r in scores], eval_cfg)
        save_ensemble(w.dir, [m.file(MODEL_FILE) for m in models], combine, members, weights, calibration,
                      networks, calibration_networks)
        shutil.copyfile(models[forecasting[0]].file(HISTORY_FILE), w.path(HISTORY_FILE))
        if statistical:
            log.info("ensemble: %d network(s) combined by the %s (validation MASE %s), weighted %s with %s%s",
                     len(forecasting), combine, metric_text(net_mase), f"{weights[0]:.2f}",
                     ", ".join(f"{m.label} {x:.2f}" for m, x in zip(members, weights[1:])),
                     "" if net_mase is not None else " (by 1 / MAE^2: MASE is undefined)")
        else:
            log.info("ensemble: %d members, combined by the %s", len(forecasting), combine)
        return {"members": len(forecasting) + len(statistical), "weights": list(weights),
                "calibration_weights": list(calibration), "networks": list(networks),
                "calibration_networks": list(calibration_networks)}

    return build(plan, compute)
