"""What the Prefect UI shows: progress, tables and the markdown report (keys are lowercase-dash).

Every function here is a no-op outside a Prefect run, so stage code stays callable from a REPL
or a unit test without a server.
"""

from __future__ import annotations

import base64
import logging
import math
from pathlib import Path

log = logging.getLogger(__name__)

METRICS_KEY = "rnn-metrics"
REPORT_KEY = "rnn-report"
STAGES_KEY = "rnn-stages"
PROGRESS_KEY = "rnn-training-progress"
FORECAST_KEY = "rnn-forecast"
LEADERBOARD_KEY = "rnn-leaderboard"
FORECAST_ROWS = 1000  # rows of the rnn-forecast table artifact (the parquet file has them all)


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


class ProgressArtifact:
    """A Prefect progress artifact, updated at most every 5 percentage points."""

    def __init__(self, key: str, description: str) -> None:
        self.id = None
        self.shown = -100.0
        if in_prefect_run():
            from prefect.artifacts import create_progress_artifact

            self.id = create_progress_artifact(progress=0.0, key=key, description=description)

    def update(self, percent: float) -> None:
        if self.id is None or (percent - self.shown < 5.0 and percent < 100.0):
            return
        from prefect.artifacts import update_progress_artifact

        update_progress_artifact(artifact_id=self.id, progress=percent)
        self.shown = percent


def metrics_rows(metrics: dict[str, dict[str, float]], extra: dict[str, dict] | None = None) -> list[dict]:
    """One table row per forecaster: name, each metric, then the `extra` columns (None where a row has none)."""
    extra = extra or {}
    columns = list(dict.fromkeys(k for cols in extra.values() for k in cols))
    return [{"forecaster": name, **{k: _cell(v) for k, v in m.items()},
             **{c: _cell(extra.get(name, {}).get(c)) for c in columns}} for name, m in metrics.items()]


def _cell(v: object) -> object:
    """A float to 6 significant digits (None when not finite: JSON has no NaN); anything else as it is."""
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


def table_rows(frame, limit: int = FORECAST_ROWS) -> list[dict]:
    """The first `limit` rows of a DataFrame as JSON-able dicts (times as ISO text, floats rounded,
    <NA> as None)."""
    import pandas as pd

    out = []
    for row in frame.head(limit).to_dict(orient="records"):
        out.append({k: (None if v is pd.NA else v.isoformat() if hasattr(v, "isoformat") else _cell(v)
                        if isinstance(v, float) else v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def publish_table(key: str, rows: list[dict], description: str) -> None:
    """A table artifact (no-op outside a run)."""
    if in_prefect_run():
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)


def png_data_url(path: str | Path) -> str:
    """A PNG file as a data: URL that the Prefect UI renders inline."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def report_markdown(title: str, summary: list[str], metrics: dict, figures: dict[str, Path],
                    config: dict | None = None, auto: set[str] = frozenset()) -> str:
    """The run report: summary lines, the metrics table, the figures inline (by heading), then the
    settings that ran (`config`, resolved; those in `auto`, "section.field", marked as chosen by auto)."""
    names = list(next(iter(metrics.values())).keys())
    lines = [f"# {title}", "", *[f"- {s}" for s in summary], "", "## Metrics on the test range", ""]
    lines += ["| forecaster | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {f} | " + " | ".join("n/a" if m.get(n) is None else f"{m[n]:.4g}" for n in names) + " |"
              for f, m in metrics.items()]
    for heading, path in figures.items():
        lines += ["", f"## {heading}", "", f"![{heading}]({png_data_url(path)})"]
    if config:
        lines += ["", "## Settings that ran", "", "| setting | value |", "|---|---|"]
        for section, fields in config.items():
            for name, value in fields.items():
                shown = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else _cell(value)
                lines.append(f"| {section}.{name} | {shown}{' (auto)' if f'{section}.{name}' in auto else ''} |")
    return "\n".join(lines) + "\n"


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A markdown artifact (no-op outside a run)."""
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)
