"""What a statsforecast user runs on a file: AutoETS and AutoTheta cross-validation, refit=False.

    python benchmarks/sf_baseline.py FILE --season 24 --test-sizes sizes.json --horizon 1 --out cv.parquet

One process, as a user's script: import statsforecast, read the CSV (`timestamp`, `value`, and
`series_id` for several series), then `StatsForecast(models=[AutoETS(season_length=m),
AutoTheta(season_length=m)], freq=1, n_jobs=1).cross_validation(h=H, n_windows=N, step_size=1,
refit=False)`, one call per group of series with the same number of test windows N (the same
test origins as rnnflow's backtest: `--test-sizes` maps each series to its count), with
statsforecast's `fallback_model=Naive()` for a series whose model raises (AutoETS with a season
of 1,440 minutes raises "Parameters out of range" after minutes of fitting; the fallback is what a
user adds to get a forecast at all). Writes the forecasts (unique_id, cutoff, ds, y, AutoETS,
AutoTheta) to `--out`. The cost benchmark
(benchmarks/cost.py) times this whole process against rnnflow's default run on the same file.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file")
    p.add_argument("--season", type=int, required=True, help="season_length of both models")
    p.add_argument("--horizon", type=int, default=1)
    p.add_argument("--test-sizes", required=True, help="JSON file: {series_id: number of test origins}")
    p.add_argument("--out", required=True, help="where the forecasts go (Parquet)")
    a = p.parse_args(argv)

    import numpy as np
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, Naive

    df = pd.read_csv(a.file)
    ids = df["series_id"].astype(str) if "series_id" in df else pd.Series("series", index=df.index)
    df = pd.DataFrame({"unique_id": ids, "ds": df.groupby(ids).cumcount().astype(np.int64), "y": df["value"]})
    sizes = {str(k): int(v) for k, v in json.loads(open(a.test_sizes).read()).items()}
    out = []
    for n_windows in sorted(set(sizes.values())):
        part = df[df["unique_id"].map(sizes) == n_windows]
        sf = StatsForecast(models=[AutoETS(season_length=a.season), AutoTheta(season_length=a.season)], freq=1,
                           n_jobs=1, fallback_model=Naive())
        out.append(sf.cross_validation(df=part, h=a.horizon, n_windows=n_windows, step_size=1, refit=False))
    pd.concat(out, ignore_index=True).to_parquet(a.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
