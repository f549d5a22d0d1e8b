"""Every file a stage writes, and how it is read back: one module per stage output.

    generate   series.parquet      long format: series_id (string), step (int64), value (float64)
                                   [, timestamp]; source, parameters and calendar in the metadata   series.py
    window     values.npy          every series end to end, float64 (n_total,)                      window.py
               split.json          the Split (tasks/components/split.py) as JSON
    train      model.pt            a ModelFile: weights, network, window geometry, scalers          model.py
               history.json        per-epoch losses and how training ended                         history.py
    ensemble   model.pt            a search's best members and how they combine (EnsembleFile)     ensemble.py
    evaluate   metrics.json        backtest metrics, per lead, intervals, the baseline gate        scores.py
               predictions.parquet one row per test origin and lead
    figures    figures/<name>.png  one per name in FIGURES                                          figures.py
    forecast   forecast.parquet    one row per series and lead past the end; figures/forecast.png  forecast.py

Functions take the entry's directory (the stage's temp directory while it is being built).
Nothing here decides where an entry lives or whether it is reused (tasks/runtime does). A stage
imports only the modules of the files it reads and writes, so its cache key covers only those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json(path: Path, obj: Any) -> None:
    """Indented, key-sorted, strict JSON (the entry is published atomically as a whole).

    NaN and infinities are refused (ValueError): strict parsers reject them, so a writer records
    an undefined value as null with its reason instead.
    """
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
