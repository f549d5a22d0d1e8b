"""benchmarks/bench.py --quick runs end to end and reports what it measured (no timing asserts).

It imports tasks.components only: the second run makes prefect, pydantic and filelock unimportable,
as on the GPU machine, and the benchmark must still run (section 5 skipped) and say they are missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench.py"

# Run the benchmark as the GPU machine would: Prefect (and its dependencies) not importable.
WITHOUT_PREFECT = (
    "import runpy, sys\n"
    "for name in ('prefect', 'pydantic', 'filelock'):\n"
    "    sys.modules[name] = None  # makes `import name` raise ImportError\n"
    "sys.argv = [sys.argv[1], *sys.argv[2:]]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def run_quick(tmp_path: Path, *prefix: str) -> tuple[str, dict]:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, *prefix, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def check_report(stdout: str, res: dict) -> None:
    assert "== 1. windowing" in stdout and "== 2. CPU training" in stdout and "ratio" in stdout
    assert res["mode"] == "quick"
    sizes = [r["n"] for r in res["windowing"]]
    assert sizes == [1_000, 10_000, 100_000]
    for r in res["windowing"]:
        assert r["bit_identical"] is True
        assert r["time_ratio"] > 0 and r["ours_s"] > 0 and r["tutorial_s"] > 0
    tr = res["training"]
    assert tr["identical_inputs"] is True
    names = [r["name"] for r in tr["rows"]]
    assert any(n.startswith("(a) per epoch") for n in names)
    assert any(n.startswith("(b) training time, whole run") for n in names)
    assert all(r["ratio"] is None or r["ratio"] > 0 for r in tr["rows"])
    assert res["rss_1e7"] == {"skipped": "--quick"}


def test_bench_quick_runs_and_reports(tmp_path):
    stdout, res = run_quick(tmp_path)
    check_report(stdout, res)
    assert set(res["peers"]) == {"darts", "neuralforecast"}
    assert res["machine"]["missing_modules"] == []  # the project's own venv has them all
    assert res["prefect"] == {"skipped": "--quick"}


def test_bench_quick_runs_without_prefect(tmp_path):
    stdout, res = run_quick(tmp_path, "-c", WITHOUT_PREFECT)
    check_report(stdout, res)
    assert set(res["machine"]["missing_modules"]) == {"prefect", "pydantic", "filelock"}
    assert res["prefect"] == {"skipped": "prefect is not installed"}


