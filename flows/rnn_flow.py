"""rnn_pipeline: generate -> window -> train -> evaluate -> figures (-> forecast), as one Prefect flow.

    python flows/rnn_flow.py                 # the tutorial, end to end, with sensible defaults
    python flows/rnn_flow.py --epochs 20     # change one setting: only affected stages rerun
    python flows/rnn_flow.py --help          # all options
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Quiet, offline-friendly Prefect defaults (the repo's prefect.toml says the same, but only
# when run from the repo root). Set before Prefect is imported; explicit settings win.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")

if __package__ in (None, "") and not any((Path(p) / "tasks").is_dir() for p in sys.path[1:]):
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # run as a script from a checkout

if __name__ == "__main__":  # bad options fail in a second, before Prefect's slow import
    from flows.cli import precheck

    if (code := precheck(sys.argv[1:])) is not None:
        sys.exit(code)

if __name__ == "__main__":  # a command, not an import (worker, tests): use a running local server
    from flows.server import use_running_server

    use_running_server()

import datetime as dt  # noqa: E402
import secrets  # noqa: E402
from typing import Literal, Optional  # noqa: E402

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows.cli import main  # noqa: E402
from tasks.config import PipelineConfig  # noqa: E402

Stage = Literal["generate", "window", "train", "evaluate", "figures", "forecast"]
Metric = Literal["mse", "rmse", "mae", "smape", "mase"]  # tasks.promote.Metric


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
        config: every setting, one section per stage.
        refresh: recompute this stage and every stage after it.
        until: stop after this stage (e.g. "window" for data preparation only; "forecast" to also
            forecast past the end of every series).
        no_cache: recompute every stage.
        promote: score this run's model and the champion on the newest holdout; keep the better.
        promote_metric: the metric that decides (lower is better).
        promote_margin: relative improvement the challenger needs (0.05: 5% lower).
    """
    from flows.run import execute
    from tasks.promote import PromoteSettings

    settings = PromoteSettings(metric=promote_metric, margin=promote_margin) if promote else None
    name = flow_run.get_name() or run_name()
    return execute(config, refresh=refresh, until=until, no_cache=no_cache, name=name, promote=settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], rnn_pipeline))
