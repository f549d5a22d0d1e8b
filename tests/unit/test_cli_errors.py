"""Bad input on the command line: one line naming the option and the value, exit status 2, no
traceback, nothing written, and all of it before Prefect is even imported (so each case is fast).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ["--output-dir", "out", "--data-dir", "data"]
DATA = ["--data-path", "m.csv", "--time-column", "month", "--value-column", "sales"]


def monthly(n: int = 60) -> pd.DataFrame:
    dates = pd.date_range("2005-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": dates, "sales": (1000 + 100 * np.sin(np.arange(n) / 2)).round(2).astype(str)})


def _bad_value(df):
    df.loc[2, "sales"] = "twelve"
    return df


def _nan(df):
    df.loc[[4, 9], "sales"] = ""
    return df


def _duplicate(df):
    df.loc[5, "month"] = df.loc[4, "month"]
    return df


def _gap(df):
    return df.drop(index=7)


def _huge(df):
    df["sales"] = (1e40 * (1 + 0.1 * np.sin(np.arange(len(df))))).astype(str)
    return df


def _business_days_with_holidays():
    holidays = pd.DatetimeIndex(["2023-01-16", "2023-02-20", "2023-04-07", "2023-05-29"])
    days = pd.bdate_range("2023-01-02", periods=130).difference(holidays)[:126]
    return pd.DataFrame({"month": days.strftime("%Y-%m-%d"), "sales": (100 + np.arange(126) % 5).astype(str)})


def _berlin_days_with_offsets():
    days = pd.date_range("2024-03-20", periods=40, freq="D", tz="Europe/Berlin")
    return pd.DataFrame({"month": [d.isoformat() for d in days], "sales": np.arange(40.0).astype(str)})


# id -> (extra args, how to write m.csv (None: no file), what the one line must contain)
CASES = {
    "seq-length-0": (["--seq-length", "0"], None, ["--seq-length='0'", "greater than or equal to 1"]),
    "epochs-0": (["--epochs", "0"], None, ["--epochs='0'"]),
    "epochs-negative": (["--epochs", "-1"], None, ["--epochs='-1'"]),
    "train-fraction-above-1": (["--train-fraction", "1.5"], None, ["--train-fraction='1.5'", "less than 1"]),
    "train-fraction-0": (["--train-fraction", "0"], None, ["--train-fraction='0'", "greater than 0"]),
    "lr-negative": (["--lr", "-0.1"], None, ["--lr='-0.1'", "greater than 0"]),
    "season-length-0": (["--season-length", "0"], None, ["--season-length='0'"]),
    "fill-unknown": (["--fill", "mean"], None, ["--fill='mean'"]),
    "device-cuda-missing": (["--device", "cuda"], None, ["--device='cuda'", "CUDA is not available"]),
    "output-dir-unwritable": (["--output-dir", "/proc/forbidden"], None, ["--output-dir='/proc/forbidden'",
                                                                          "cannot be created"]),
    "output-dir-is-a-file": (["--output-dir", "m.csv"], monthly, ["--output-dir='m.csv'", "not a directory"]),
    "data-dir-under-a-file": (["--data-dir", "m.csv/data"], monthly, ["--data-dir='m.csv/data'", "not a directory"]),
    "config-missing": (["--config", "nope.json"], None, ["--config='nope.json'", "cannot read"]),
    "data-path-missing": (["--data-path", "missing.csv"], None, ["--data-path='missing.csv'", "file not found"]),
    "data-file-empty": (DATA, "", ["--data-path='m.csv'", "empty file"]),
    "data-file-header-only": (DATA, "month,sales\n", ["--data-path='m.csv'", "no rows"]),
    "value-column-misspelt": ([*DATA, "--value-column", "sale"], monthly,
                              ["--value-column='sale'", "did you mean 'sales'"]),
    "time-column-misspelt": ([*DATA, "--time-column", "mnth"], monthly,
                             ["--time-column='mnth'", "did you mean 'month'"]),
    "non-numeric-values": (DATA, lambda: _bad_value(monthly()), ["--value-column='sales'", "row 3", "'twelve'"]),
    "missing-values": (DATA, lambda: _nan(monthly()), ["--value-column='sales'", "2 missing", "rows 5, 10",
                                                        "--fill interpolate"]),
    "duplicate-times": (DATA, lambda: _duplicate(monthly()), ["--time-column='month'", "duplicate times",
                                                               "2005-05-01"]),
    "irregular-spacing": (DATA, lambda: _gap(monthly()), ["--time-column='month'", "irregular spacing",
                                                          "expected 1 month between 2005-07-01 and 2005-09-01"]),
    "series-too-short": (DATA, lambda: monthly(12), ["series_length=12", "needs at least 22"]),
    "values-beyond-float32": (DATA, lambda: _huge(monthly(72)), ["--value-column='sales'", "beyond float32's range",
                                                                  "the largest 1.09"]),
    "business-days-missing-holidays": (DATA, _business_days_with_holidays, [
        "--time-column='month'", "expected 1 business day between 2023-01-13 and 2023-01-17",
        "(2023-01-16 missing; 4 missing in all)", "--fill-missing-dates", "--holidays"]),
    "added-dates-need-a-value-fill": ([*DATA, "--fill-missing-dates"], lambda: _gap(monthly()),
                                      ["--value-column='sales'", "1 added date without values", "--fill"]),
    "mixed-offsets-need-a-zone": (DATA, _berlin_days_with_offsets, ["--time-column='month'", "+01:00, +02:00",
                                                                    "--time-zone"]),
    "time-zone-unknown": ([*DATA, "--time-zone", "Mars/Olympus"], monthly, ["--time-zone='Mars/Olympus'",
                                                                            "not a time zone"]),
    "holidays-not-dates": ([*DATA, "--holidays", "2023-13-45"], monthly, ["--holidays='2023-13-45'", "not a date"]),
    "series-too-short-for-window": ([*DATA, "--seq-length", "60"], monthly, ["series_length=60", "needs at least"]),
    "reference-unknown": (["--references", "ets,prophet"], None, ["--references='prophet'", "'ets', 'theta' or 'arima'"]),
    "reference-twice": (["--references", "ets,ets"], None, ["--references='ets,ets'", "each reference once"]),
    "gate-baseline-unknown": (["--gate-baseline", "worst"], None, ["--gate-baseline='worst'", "'best', 'naive'"]),
    "gate-baseline-not-computed": (["--references", "theta", "--gate-baseline", "ets"], None,
                                   ["--gate-baseline='ets'", "ets is not among the references (theta)",
                                    "add it to --references"]),
    "gate-baseline-references-off": (["--references", "none", "--gate-baseline", "theta"], None,
                                     ["--gate-baseline='theta'", "not among the references (none)"]),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` with its content hash (directories as 'dir')."""
    return {
        str(p.relative_to(root)): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # never reached
    return subprocess.run([sys.executable, str(ROOT / "flows" / "rnn_flow.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    args, content, expected = CASES[case]
    if case == "device-cuda-missing" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if content is not None:
        text = content if isinstance(content, str) else content().to_csv(index=False)
        (tmp_path / "m.csv").write_text(text)
    before = snapshot(tmp_path)
    proc = run_cli(tmp_path, *OUT, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for part in expected:
        assert part in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert snapshot(tmp_path) == before  # no output root, no data dir, no probe left behind


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli(tmp_path, *OUT, "--data-path", "missing.csv", "--debug")
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr and proc.stderr.strip().splitlines()[-1].startswith("error: --data-path=")


def test_an_existing_output_root_is_left_as_it_was(tmp_path):
    (tmp_path / "out" / "runs").mkdir(parents=True)
    (tmp_path / "out" / "runs" / "keep.txt").write_text("x")
    (tmp_path / "m.csv").write_text(_gap(monthly()).to_csv(index=False))
    before = snapshot(tmp_path)
    proc = run_cli(tmp_path, *OUT, *DATA)
    assert proc.returncode == 2 and "irregular spacing" in proc.stderr
    assert snapshot(tmp_path) == before
