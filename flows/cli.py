"""Command line of flows/rnn_flow.py: options -> PipelineConfig, one clear line on bad input."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from tasks.config import STAGES, PipelineConfig, with_overrides
from tasks.errors import InputError

# option -> (section, field); the option's type comes from the pydantic field, checked there.
OPTIONS: dict[str, tuple[str, str, str]] = {
    "--n-points": ("data", "n_points", "points to generate (tutorial: 1020)"),
    "--noise": ("data", "noise", "std of additive Gaussian noise"),
    "--trend": ("data", "trend", "linear trend per unit of x"),
    "--data-seed": ("data", "seed", "seed of the noise"),
    "--data-path": ("data", "data_path", "your own series: a CSV or Parquet file"),
    "--time-column": ("data", "time_column", "time column of --data-path"),
    "--value-column": ("data", "value_column", "value column of --data-path"),
    "--id-column": ("data", "id_column", "series id column of --data-path (many series)"),
    "--fill": ("data", "fill", "repair missing values: interpolate or ffill"),
    "--seq-length": ("window", "seq_length", "input window length (tutorial: 20)"),
    "--horizon": ("window", "horizon", "steps forecast from each origin (tutorial: 1)"),
    "--train-fraction": ("window", "train_fraction", "share of windows for training (0.8)"),
    "--val-fraction": ("window", "val_fraction", "share of training windows held out for early stopping"),
    "--normalize": ("window", "normalize", "auto (none for generated data, window for files), none, standard "
                    "(fitted on the training range only) or window (per window)"),
    "--cell": ("model", "cell", "auto (rnn for generated data, gru for files), rnn, gru or lstm"),
    "--hidden-size": ("model", "hidden_size", "hidden units (64)"),
    "--layers": ("model", "num_layers", "stacked recurrent layers (1)"),
    "--dropout": ("model", "dropout", "dropout between layers"),
    "--strategy": ("model", "strategy", "direct (one head, all horizon steps) or recursive (one step, fed back)"),
    "--skip": ("model", "skip", "learn a correction to a baseline: auto (none for generated data, seasonal for "
               "files), none, naive or seasonal"),
    "--epochs": ("train", "epochs", "maximum epochs (auto: 100; 300 for files)"),
    "--batch-size": ("train", "batch_size", "mini-batch size (32)"),
    "--lr": ("train", "lr", "Adam learning rate (auto: 1e-3; 1e-2 for files)"),
    "--seed": ("train", "seed", "seed for weights and shuffling"),
    "--device": ("train", "device", "auto, cpu, cuda or mps"),
    "--patience": ("train", "patience", "early-stopping patience in epochs (0: off; auto: 5, 20 for files)"),
    "--min-delta": ("train", "min_delta", "relative val-loss improvement that resets the patience (auto: 0.1; 0 for files)"),
    "--ema-decay": ("train", "ema_decay", "per-step decay of the averaged weights that are kept (0: off)"),
    "--threads": ("train", "threads", "torch CPU threads (1)"),
    "--no-cuda-graphs": ("train", "cuda_graphs", "train with the plain loop on CUDA"),
    "--checkpoint-every": ("train", "checkpoint_every", "epochs between checkpoints"),
    "--season-length": ("eval", "season_length", "seasonal-naive lag in steps (default: from the data's frequency)"),
    "--refit-every": ("eval", "refit_every", "backtest: retrain before every K test origins (0: never; K-fold cost)"),
    "--levels": ("eval", "levels", "conformal interval levels, comma-separated (0.8,0.95)"),
    "--refit-full": ("forecast", "refit_full", "retrain on all windows before forecasting the future"),
    "--fig-width": ("figures", "width", "figure width (inches)"),
    "--fig-height": ("figures", "height", "figure height (inches)"),
    "--fig-dpi": ("figures", "dpi", "figure resolution"),
    "--output-dir": ("output", "root", "run outputs and the stage cache (artifacts)"),
    "--data-dir": ("output", "data_dir", "generated or ingested series (data)"),
}
FLAG_OF = {(s, f): opt for opt, (s, f, _) in OPTIONS.items()}
# InputError field ("value_column", "output.root", ...) -> the option that sets it
_FIELDS = [f for _, f, _ in OPTIONS.values()]
FLAG_OF_FIELD = {
    **{f: opt for opt, (_, f, _) in OPTIONS.items() if _FIELDS.count(f) == 1},
    **{f"{s}.{f}": opt for opt, (s, f, _) in OPTIONS.items()},
    "config": "--config",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python flows/rnn_flow.py",
        description="Train and evaluate an RNN/GRU/LSTM forecaster as a Prefect flow; unchanged stages are reused.",
    )
    for opt, (section, field, help_) in OPTIONS.items():
        if opt in ("--no-cuda-graphs", "--refit-full"):
            const = opt == "--refit-full"
            p.add_argument(opt, dest=f"{section}.{field}", action="store_const", const=const, help=help_)
        else:
            p.add_argument(opt, dest=f"{section}.{field}", metavar=field.upper(), help=help_)
    p.add_argument("--config", metavar="FILE", help="a JSON file with a full or partial config")
    p.add_argument("--refresh", choices=STAGES, help="recompute this stage and every one after it")
    p.add_argument("--until", choices=STAGES, default="figures",
                   help="stop after this stage (forecast: also forecast past the end of every series)")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    add_promote_options(p)
    return p


def add_promote_options(p: argparse.ArgumentParser) -> None:
    """--promote / --no-promote, --promote-metric, --promote-margin (flow parameters, not config)."""
    p.add_argument("--promote", action=argparse.BooleanOptionalAction, default=False,
                   help="judge this run's model against the champion and keep the better one")
    p.add_argument("--promote-metric", default="mase", help="the deciding metric: mse, rmse, mae, smape or mase")
    p.add_argument("--promote-margin", type=float, default=0.0, metavar="FRACTION",
                   help="relative improvement a challenger needs (0.05: 5%% lower)")


def promote_params(args: argparse.Namespace) -> dict:
    """The flow's promote parameters, validated (tasks.promote.PromoteSettings)."""
    from tasks.promote import PromoteSettings

    s = PromoteSettings(metric=args.promote_metric, margin=args.promote_margin)
    return {"promote": bool(args.promote), "promote_metric": s.metric, "promote_margin": s.margin}


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """Build the config: defaults, then --config FILE, then single options (validated by pydantic)."""
    cfg = PipelineConfig()
    if args.config:
        try:
            cfg = PipelineConfig.model_validate(json.loads(Path(args.config).read_text()))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise InputError("config", args.config, f"cannot read a JSON config ({exc})") from None
    overrides: dict[str, dict] = {}
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            section, field = dest.split(".")
            overrides.setdefault(section, {})[field] = value
    return with_overrides(cfg, overrides)


def describe_validation_error(exc: ValidationError) -> str:
    """The first pydantic error as one line naming the option and the value."""
    err = exc.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    if exc.title == "PromoteSettings" and loc:
        return f"--promote-{loc[0]}={err.get('input')!r}: {err['msg']}"
    name = FLAG_OF.get(loc[:2], ".".join(loc)) if len(loc) >= 2 else ".".join(loc) or "config"
    return f"{name}={err.get('input')!r}: {err['msg']}"


def describe_input_error(exc: InputError) -> str:
    """An InputError as one line, naming the command-line option where there is one."""
    return f"{FLAG_OF_FIELD.get(exc.field, exc.field)}={exc.value!r}: {exc.message}"


def check_writable(path: str | Path, field: str) -> None:
    """Require `path` to be a writable directory, or creatable as one, without creating anything.

    Probes with a temporary directory in the nearest existing ancestor, removed at once.
    """
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        where = "" if existing == p else f": {existing} is not a directory"
        raise InputError(field, str(path), f"not a directory{where}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rnnflow-write-test-", dir=existing))
    except OSError as exc:
        why = exc.strerror or str(exc)
        msg = (f"not a writable directory ({why})" if existing == p
               else f"cannot be created: {existing} is not writable ({why})")
        raise InputError(field, str(path), msg) from None


_validated: set[str] = set()


def validate(cfg: PipelineConfig) -> None:
    """Check what pydantic cannot before any training: device, data file, output dirs (InputError)."""
    if cfg.model_dump_json() in _validated:
        return
    if cfg.train.device != "auto":
        from tasks.model import resolve_device

        resolve_device(cfg.train.device)
    if cfg.data.data_path is not None:
        from tasks import ingest
        from tasks.split import min_series_length

        ingest.prepare_series(
            ingest.read_table(cfg.data.data_path), time_column=cfg.data.time_column,
            value_column=cfg.data.value_column, id_column=cfg.data.id_column, fill=cfg.data.fill,
            min_length=min_series_length(cfg.window),
        )
    check_writable(cfg.output.root, "output.root")
    check_writable(cfg.output.data_dir, "output.data_dir")
    _validated.add(cfg.model_dump_json())


def precheck(argv: list[str]) -> int | None:
    """Validate a run's options before Prefect is imported: 2 (after one line on stderr) or None.

    Subcommands and --help are left to `main`; options this parser does not know are ignored here.
    """
    if (argv and not argv[0].startswith("-")) or {"-h", "--help"} & set(argv):
        return None
    args, _ = build_parser().parse_known_args(argv)
    try:
        validate(config_from_args(args))
    except ValidationError as exc:
        return _fail(describe_validation_error(exc), exc, args.debug)
    except InputError as exc:
        return _fail(describe_input_error(exc), exc, args.debug)
    return None


def run(argv: list[str], pipeline: Callable) -> int:
    """Parse, validate, run the flow, print the summary; bad input -> one line on stderr and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
        validate(cfg)  # fail before any Prefect start-up or training
        _quiet_failures(args.debug)
        promote = promote_params(args)
        summary = pipeline(config=cfg, refresh=args.refresh, until=args.until, no_cache=args.no_cache, **promote)
    except ValidationError as exc:
        return _fail(describe_validation_error(exc), exc, args.debug)
    except InputError as exc:
        return _fail(describe_input_error(exc), exc, args.debug)
    except Exception as exc:
        from tasks.train import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            return _fail(str(exc), exc, args.debug)
        raise
    print_summary(summary)
    return 0


def _fail(message: str, exc: BaseException, debug: bool) -> int:
    if debug:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {message}", file=sys.stderr)
    return 2


class _DropKnownFailures(logging.Filter):
    """Hide Prefect's traceback for failures the CLI reports in one line itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tasks.train import TrainingDiverged

        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and record.levelno >= logging.ERROR:
            msg = record.getMessage()
            return not ("InputError" in msg or "TrainingDiverged" in msg or "Finished in state Failed" in msg)
        return not isinstance(exc, (InputError, TrainingDiverged))


def _quiet_failures(debug: bool) -> None:
    if debug:
        return
    f = _DropKnownFailures()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            h.addFilter(f)


def print_summary(summary: dict) -> None:
    """A short, useful end of run: stages, verdict, where the outputs are."""
    print("\nstages:")
    for row in summary["stages"]:
        print(f"  {row['stage']:<9} {row['action']:<10} {row['reason']}")
    if "verdict" in summary:
        print(f"result: {summary['verdict']}")
    if "gate" in summary:
        print(summary["gate"])
    if "forecast" in summary:
        print(f"forecast: {summary['forecast']['rows']} rows from {summary['forecast']['first']}")
    print(f"outputs: {summary['run_dir']}")


def main(argv: list[str], pipeline: Callable) -> int:
    """Entry point: `serve` and `rollback` subcommands, else a pipeline run."""
    from flows import commands

    if argv[:1] == ["serve"]:
        return commands.serve(argv[1:], pipeline)
    if argv[:1] == ["rollback"]:
        return commands.rollback(argv[1:])
    return run(argv, pipeline)
