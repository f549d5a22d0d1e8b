"""Split-conformal intervals: calibrated on validation origins (each test origin adding the test targets
observed by then), nominal coverage on fresh data."""

import numpy as np
import pandas as pd
import pytest
import torch

from tasks.components.backtest import backtest
from tasks.components.conformal import (
    calibrate,
    conformal_halfwidths,
    interval_stats,
    kth_of_union,
    sequential_halfwidths,
    updated_halfwidths,
)
from tests.helpers import split_for


class LastValue(torch.nn.Module):
    """The naive forecaster as a model: every lead is the window's last value."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :].expand(-1, self.horizon)


def test_halfwidth_is_the_conformal_order_statistic():
    r = np.array([[1.0, -10.0], [-2.0, 20.0], [3.0, 30.0], [4.0, -40.0]])
    # n = 4, level 0.6: ceil(5 * 0.6) = 3rd smallest |r| per lead
    assert conformal_halfwidths(r, (0.6,))["60"].tolist() == [3.0, 30.0]
    assert np.isinf(conformal_halfwidths(r, (0.9,))["90"]).all()  # ceil(5 * 0.9) = 5 > n


def test_too_few_calibration_points_are_pooled_over_leads_then_clipped():
    rng = np.random.default_rng(0)
    s = np.abs(rng.normal(size=(6, 12))) * np.arange(1, 13)  # spread grows with the lead
    cal = calibrate(s, (0.9, 0.95))  # 6 points: too few for 90% (9) and 95% (19)
    assert cal["method"] == "pooled over leads" and cal["clipped"] == []
    q = cal["halfwidths"]["90"]
    assert q.shape == (12,) and np.allclose(q / s.mean(axis=0), q[0] / s[:, 0].mean())  # each lead's own spread
    tiny = calibrate(s[:, :1], (0.95,))
    assert tiny["clipped"] == ["95"] and tiny["halfwidths"]["95"][0] == s[:, 0].max()


def test_each_level_is_pooled_only_when_its_own_points_are_too_few():
    rng = np.random.default_rng(3)
    s = np.abs(rng.normal(size=(10, 4))) * np.arange(1, 5)  # 10 points: enough for 80% (4), not 95% (19)
    cal = calibrate(s, (0.8, 0.95))
    assert cal["method"] == "per lead, 95% pooled over leads" and cal["clipped"] == []
    assert np.array_equal(cal["halfwidths"]["80"], conformal_halfwidths(s, (0.8,))["80"])  # the exact quantile
    assert np.array_equal(cal["halfwidths"]["95"], calibrate(s, (0.95,))["halfwidths"]["95"])
    assert calibrate(s, (0.8,))["method"] == "per lead"


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_gaussian_noise_gets_nominal_coverage(level):
    rng = np.random.default_rng(1)
    truth = np.sin(np.linspace(0, 60, 6000))
    cal, test = truth[:2000] + rng.normal(0, 0.3, 2000), truth[2000:] + rng.normal(0, 0.3, 4000)
    q = calibrate((cal - truth[:2000])[:, None], (level,))["halfwidths"][str(round(level * 100))]
    cov = interval_stats(test[:, None], truth[2000:, None], q)["coverage"]
    assert abs(cov - level) < 3 * np.sqrt(level * (1 - level) / 4000) + 1 / 2000
    assert q[0] == pytest.approx(0.3 * {0.8: 1.2816, 0.95: 1.96}[level], rel=0.08)


def test_backtest_intervals_cover_a_random_walk_at_every_lead():
    """Through the evaluate stage: a naive model on a Gaussian random walk, calibrated on val only."""
    rng = np.random.default_rng(2)
    v = 100.0 + np.cumsum(rng.normal(0, 1.0, 8000))
    split = split_for(v, ("rw",), seq_length=5, horizon=3, train_fraction=0.5, val_fraction=0.6)
    _, result = backtest(LastValue(3).eval(), v, split, levels=(0.8, 0.95))
    iv = result["intervals"]
    assert iv["method"] == "per lead" and iv["n_calibration"] > 2000
    hw = np.array(iv["halfwidths"]["80"])
    assert hw[0] < hw[1] < hw[2]  # the h-step error of a random walk grows like sqrt(h)
    for name, level in (("80", 0.8), ("95", 0.95)):
        for cov in iv["test"][name]["coverage_by_lead"]:
            assert abs(cov - level) < 0.03, (name, cov)
        assert result["intervals"]["test"][name]["mean_width"] > 0


def test_a_split_without_calibration_or_validation_origins_says_it_has_no_intervals():
    import logging

    from tasks.components.backtest import conformal_bands

    values = np.sin(np.arange(60) / 3.0)
    split = split_for(values, ("s",), seq_length=5, horizon=1, val_fraction=0.0)
    assert split.count("val") == 0 and split.count("cal") == 0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # the "tasks" loggers may not propagate (Prefect's logging config)
    logger = logging.getLogger("tasks.components.backtest")
    logger.addHandler(handler)
    try:
        cal = conformal_bands(lambda v, sp, idx, steps: np.zeros((len(idx), steps)), values, split, (0.8,))
    finally:
        logger.removeHandler(handler)
    assert cal["n_calibration"] == 0 and np.isnan(cal["halfwidths"]["80"]).all()
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        "no calibration or validation origins: no prediction intervals (the windows leave the split no room; lower "
        "--seq-length or --horizon)"]


# --------------------------------------------------------------------------- sequential (online) updates


def brute_force(scores, levels, later, start, seen, nest=True):
    """sequential_halfwidths the slow way: sort every origin's union, as calibrate() does; then
    (`nest`) each level at least as wide as every lower one, origin by origin and lead by lead."""
    s, later = np.abs(scores), np.abs(later)
    n, H = s.shape
    profile = np.where(s.mean(axis=0) > 0, s.mean(axis=0), 1.0)
    out = {}
    for level in levels:
        q = np.empty((len(seen), H))
        for i in range(len(seen)):
            mine = [later[start[i] : start[i] + seen[i, h], h] for h in range(H)]
            if np.ceil((n + 1) * level) > n and H > 1:  # pooled over leads, in the calibration's profile
                union = np.sort(np.concatenate([(s / profile).ravel(), *(m / p for m, p in zip(mine, profile))]))
                k = min(int(np.ceil((len(union) + 1) * level)), len(union))
                q[i] = union[k - 1] * profile
            else:
                for h in range(H):
                    union = np.sort(np.concatenate([s[:, h], mine[h]]))
                    q[i, h] = union[min(int(np.ceil((len(union) + 1) * level)), len(union)) - 1]
        out[str(round(level * 100))] = q
    if nest:
        names = [str(round(level * 100)) for level in sorted(levels)]
        for lower, higher in zip(names, names[1:]):
            out[higher] = np.maximum(out[higher], out[lower])
    return out


def test_the_kth_of_the_union_is_the_kth_of_the_sorted_union():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n, r, m = rng.integers(0, 40), rng.integers(1, 6), rng.integers(0, 9)
        base = np.sort(rng.integers(0, 12, n).astype(float))  # ties between and within the two
        extra = rng.integers(0, 12, (r, m)).astype(float)
        count = rng.integers(0, m + 1, r)
        extra[np.arange(m)[None, :] >= count[:, None]] = np.nan  # NaN: no value
        if (n + count == 0).any():
            continue
        k = np.array([rng.integers(1, n + c + 1) for c in count])
        want = [np.sort(np.concatenate([base, extra[i, : count[i]]]))[k[i] - 1] for i in range(r)]
        np.testing.assert_array_equal(kth_of_union(base, extra, k), want)
    big = np.sort(rng.normal(size=100_000))
    extra = rng.normal(size=(3, 7))
    for k in (1, 50_000, 100_007):
        assert kth_of_union(big, extra, k)[1] == np.sort(np.concatenate([big, extra[1]]))[k - 1]
    with pytest.raises(ValueError):
        kth_of_union(big[:3], extra[:1, :2], 6)


@pytest.mark.parametrize("n_cal, levels", [(30, (0.8, 0.95)), (6, (0.8, 0.9)), (2, (0.95,))])
@pytest.mark.parametrize("long", [256, 4])
def test_each_origins_half_widths_are_the_quantiles_of_its_own_union(n_cal, levels, long, monkeypatch):
    """Per lead (30 points), pooled over leads (6: too few for 90% per lead) and clipped (2 x 3 points
    for 95%: the union's largest until enough test targets are observed); long=4: the rows that
    observed more than 4 test scores go through a merged base (a long test range's path)."""
    from tasks.components import conformal

    monkeypatch.setattr(conformal, "LONG", long)
    rng = np.random.default_rng(n_cal)
    H, m = 3, 40
    s = np.abs(rng.normal(size=(n_cal, H))) * np.arange(1, H + 1)
    later = np.abs(rng.normal(0, 2, size=(m, H))) * np.arange(1, H + 1)
    start = np.repeat([0, 25], [25, 15])  # two series: rows 0-24 and 25-39
    pos = np.arange(m) - start
    seen = np.clip(pos[:, None] - np.arange(1, H + 1) + 1, 0, None)  # lead h of row j is seen from row j + h on
    got = sequential_halfwidths(s, levels, later, start, seen)
    want = brute_force(s, levels, later, start, seen)
    cal = calibrate(s, levels)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12)
        for first in (0, 25):
            assert np.array_equal(got[name][first], cal["halfwidths"][name])  # nothing observed yet
        assert not np.allclose(got[name][-1], cal["halfwidths"][name])
    every = brute_force(s, levels, later, [0], np.full((1, H), m))
    for name, q in updated_halfwidths(s, levels, later).items():
        np.testing.assert_allclose(q, every[name][0], rtol=1e-12)
    if n_cal == 6:
        assert cal["method"] == "per lead, 90% pooled over leads"
        raw = brute_force(s, levels, later, start, seen, nest=False)["90"]
        assert np.allclose(raw / s.mean(axis=0), (raw[:, 0] / s[:, 0].mean())[:, None])  # one profile
        assert (raw < got["80"]).any()  # the pooled 90% fell inside the per-lead 80% somewhere: nested
        np.testing.assert_allclose(got["90"], np.maximum(raw, got["80"]), rtol=1e-12)
    if n_cal == 2:
        assert cal["clipped"] == ["95"] and cal["method"] == "pooled over leads"
        assert np.array_equal(got["95"][1], np.full(H, max(np.max(s / s.mean(axis=0)), later[0, 0] / s[:, 0].mean()))
                              * s.mean(axis=0))  # the union's largest: row 0's lead-1 score added


def test_the_test_origins_bands_update_without_reading_a_target_they_have_not_observed():
    """A test score changes the half-widths of exactly the origins of its series that observed its target."""
    from tasks.components.intervals import sequential_bands

    split = split_for(np.zeros(600), ("a", "b"), lengths=(300, 300), seq_length=5, horizon=3, train_fraction=0.5,
                      val_fraction=0.3, calibration=10)
    idx = split.origins("test")
    rng = np.random.default_rng(7)
    for n_cal, levels in ((20, (0.8, 0.95)), (5, (0.9,))):  # per lead; pooled over leads
        cal, test = np.abs(rng.normal(size=(n_cal, 3))), np.abs(rng.normal(size=(len(idx), 3)))
        j, h = 40, 2  # lead 3 of the 41st test origin of series a
        low, high = test.copy(), test.copy()
        low[j, h], high[j, h] = 0.0, 1e6
        a, b = sequential_bands(split, idx, cal, low, levels), sequential_bands(split, idx, cal, high, levels)
        observed = split.last_observed(idx) >= split.target_index(idx[j : j + 1])[0, h]
        same_series = split.series_index(idx) == split.series_index(idx[j : j + 1])[0]
        for name in a:
            moved = (a[name] != b[name]).any(axis=1)
            assert not moved[~observed].any() and not moved[~same_series].any()
            assert moved[observed & same_series][0]  # the first origin that observed it
        last = test.copy()
        last[np.flatnonzero(same_series)[-1], 2] = 1e9  # the last target of series a: no test origin observes it
        c = sequential_bands(split, idx, cal, last, levels)
        for name, q in sequential_bands(split, idx, cal, test, levels).items():
            np.testing.assert_array_equal(c[name], q)
            np.testing.assert_array_equal(q[[0, 147]], np.tile(calibrate(cal, levels)["halfwidths"][name], (2, 1)))


def random_walk_pair(double_at: int | None, seed: int = 11) -> np.ndarray:
    """Two random walks of 300 points; their steps' spread doubles from local position `double_at` on."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 1, (2, 300))
    if double_at is not None:
        steps[:, double_at:] *= 2
    return (100 + np.cumsum(steps, axis=1)).ravel()


def test_the_backtest_updates_each_band_with_the_test_targets_observed_before_it():
    from flows.report import interval_line
    from tasks.components.backtest import score_scales

    values = random_walk_pair(double_at=151)  # the first test origin observes up to local 150
    split = split_for(values, ("a", "b"), lengths=(300, 300), seq_length=5, horizon=3, train_fraction=0.5,
                      val_fraction=0.3, calibration=10)
    df, result = backtest(LastValue(3).eval(), values, split, levels=(0.8, 0.95))
    iv = result["intervals"]
    assert iv["n_calibration"] == 20 and iv["updated"] and "final_halfwidths" in iv
    assert "20 calibration origins, per lead, updated with the test targets as they are observed)" in interval_line(
        result)
    scale = score_scales(values, split, split.origins("test"))[[0, -1]]  # each series' own
    first = df[df["origin"] == df.groupby("series_id")["origin"].transform("min")]
    for name in ("80", "95"):
        half = (first[f"upper_{name}"] - first["model"]).to_numpy().reshape(2, 3)
        np.testing.assert_allclose(half, np.outer(scale, iv["halfwidths"][name]), rtol=1e-9)  # calibration only
        y, pred = df["actual"].to_numpy().reshape(-1, 3), df["model"].to_numpy().reshape(-1, 3)
        static = np.repeat(scale, 147)[:, None] * np.asarray(iv["halfwidths"][name])[None, :]
        before = interval_stats(y, pred, static)["coverage"]
        inside = (df["actual"] >= df[f"lower_{name}"]) & (df["actual"] <= df[f"upper_{name}"])
        assert inside.mean() == pytest.approx(iv["test"][name]["coverage"])
        assert iv["test"][name]["coverage"] > before + 0.1, (name, before, iv["test"][name]["coverage"])
        assert np.all(np.asarray(iv["final_halfwidths"][name]) > np.asarray(iv["halfwidths"][name]))
    changed = values.copy()
    changed[[299, 599]] += 50.0  # each series' last target: observed by no test origin
    df_b, result_b = backtest(LastValue(3).eval(), changed, split, levels=(0.8, 0.95))
    bands = [c for c in df if c.startswith(("lower_", "upper_"))]
    pd.testing.assert_frame_equal(df[bands], df_b[bands])
    assert result_b["intervals"]["halfwidths"] == iv["halfwidths"]
    assert result_b["intervals"]["final_halfwidths"] != iv["final_halfwidths"]  # the future's bands see it


# --------------------------------------------------------------------------- nested by construction


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def generated_series(draw):
    """Series of the shapes that crossed bands: negative multiplicative seasons, random walks,
    intermittent demand, constants, with a few calibration origins (95% pooled, 80% per lead)."""
    kind = draw(st.sampled_from(["negative_season", "random_walk", "intermittent", "constant", "trend"]))
    n = draw(st.integers(80, 200))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    t = np.arange(n)
    v = {"negative_season": -(100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 2, n),
         "random_walk": np.cumsum(rng.normal(0, 1, n)),
         "intermittent": (rng.poisson(0.3, n) * rng.integers(1, 5, n)).astype(float),
         "constant": np.full(n, float(rng.normal(0, 100))),
         "trend": 5 * t + rng.normal(0, 10, n)}[kind]
    horizon = draw(st.integers(1, 6))
    calibration = draw(st.integers(2, 25))
    levels = draw(st.sampled_from([(0.8, 0.95), (0.5, 0.8, 0.95), (0.95, 0.8), (0.9,)]))
    shrink = draw(st.floats(0.5, 1.5))  # a forecaster off by a series-dependent factor
    # or one whose errors are spread at lead 1 and nearly constant at later leads: the pooled 95%
    # (each lead's scores over its mean) then falls inside lead 1's own 80%
    offset = draw(st.sampled_from([None, 5.0, 50.0]))
    return v, horizon, calibration, levels, shrink, offset


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=generated_series())
def test_bands_are_nested_at_every_lead_over_generated_series(case):
    """lower_95 <= lower_80 <= forecast <= upper_80 <= upper_95 for every test origin and lead of
    the backtest, and for the future forecast, whatever the series and however each level was
    calibrated (issue 22)."""
    from tasks.forecast import future_forecast

    v, horizon, calibration, levels, shrink, offset = case

    def forecaster(values, split, idx, steps):
        idx = np.asarray(idx)
        if offset is None:
            last = values[split.last_observed(idx)]
            return (last * shrink)[:, None] + np.zeros((1, steps))
        seen = split.last_observed(idx)[:, None] + np.arange(1, steps + 1)  # a test forecaster may peek
        truth = values[np.minimum(seen, len(values) - 1)]
        noise = np.random.default_rng(int(idx.sum()) % 2**32).normal(0, 1, truth.shape)
        errors = np.where(np.arange(steps) == 0, 3 * noise, offset + 0.01 * noise)
        return truth + errors

    split = split_for(v, seq_length=12, horizon=horizon, calibration=calibration, val_fraction=0.2)
    df, result = backtest(forecaster, v, split, levels=levels)
    names = [str(round(level * 100)) for level in sorted(levels, reverse=True)]
    order = [f"lower_{x}" for x in names] + ["model"] + [f"upper_{x}" for x in reversed(names)]
    bands = df[order].to_numpy(float)
    assert (np.diff(bands, axis=1) >= 0).all(), result["intervals"]["method"]
    future = future_forecast(forecaster, v, split, result["intervals"])
    cols = np.stack([future[c if c != "model" else "forecast"] for c in order], axis=-1)
    assert (np.diff(cols, axis=-1) >= 0).all()
