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

if __name__ == "__main__":  # a command: parse and validate the options before Prefect's slow import
    from flows.cli import main

    sys.exit(main(sys.argv[1:]))

import datetime as dt  # noqa: E402
import secrets  # noqa: E402
from typing import Literal, Optional  # noqa: E402

from prefect import flow  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows.report import finish  # noqa: E402
from tasks.config import Metric, PipelineConfig, PromoteSettings  # noqa: E402
from tasks.evaluate import evaluate_task  # noqa: E402
from tasks.figures import figures_task  # noqa: E402
from tasks.forecast import forecast_task  # noqa: E402
from tasks.formats.scores import read_metrics  # noqa: E402
from tasks.generate import generate_task, source_digest  # noqa: E402
from tasks.promote import promote_task  # noqa: E402
from tasks.runtime.stages import Run  # noqa: E402
from tasks.train import train_task  # noqa: E402
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
    run = Run.start(config, name=flow_run.get_name() or run_name(), refresh=refresh, until=until, no_cache=no_cache)
    cfg = run.cfg  # every "auto" resolved

    series = run.stage(generate_task, data_cfg=cfg.data, source=source_digest(cfg.data))
    split = run.stage(window_task, window_cfg=cfg.window, series=series)
    model = run.stage(train_task, model_cfg=cfg.model, train_cfg=cfg.train, split=split)
    scores = run.stage(evaluate_task, eval_cfg=cfg.eval, model_cfg=cfg.model, train_cfg=cfg.train,
                       split=split, model=model)
    run.stage(figures_task, fig_cfg=cfg.figures, model_cfg=cfg.model, series=series, scores=scores, model=model)
    run.stage(forecast_task, forecast_cfg=cfg.forecast, fig_cfg=cfg.figures, model_cfg=cfg.model,
              train_cfg=cfg.train, series=series, split=split, model=model, scores=scores)

    decision = None
    if promote and model is not None:
        gate = read_metrics(scores.path)["gate"] if scores is not None else None
        decision = promote_task(split, model, gate, str(run.paths.root), run.name,
                                PromoteSettings(metric=promote_metric, margin=promote_margin), cfg.eval)
    return finish(run, promoted=decision, promote=promote)
