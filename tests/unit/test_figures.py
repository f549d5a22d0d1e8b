"""Figures speak the data's language: dates and the value column for a file, integer steps for the
sine, the network's real name, and every line as long as the data it can cover."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from tasks.config import FiguresConfig
from tasks.figures import (
    Labels,
    naive_one_step,
    plot_error_by_lead,
    plot_loss,
    plot_losses,
    plot_predictions,
    plot_residuals,
    plot_series_mase,
    render_all,
)
from tasks.forecast import plot_forecast

CFG = FiguresConfig(width=4, height=3, dpi=40)
DATED = {"source": "file", "params": {"time_column": "month", "value_column": "sales"}}


def predictions(n_origins: int = 12, horizon: int = 3, first_step: int = 40) -> pd.DataFrame:
    """A backtest table as evaluate writes it: origin o forecasts steps o+1..o+H (actual = step / 10)."""
    rows = []
    for o in range(first_step - 1, first_step - 1 + n_origins):
        for lead in range(1, horizon + 1):
            step = o + lead
            rows.append({"series_id": "s", "step": step, "origin": o, "lead": lead, "actual": step / 10,
                         "model": step / 10 + 0.01 * lead, "naive": o / 10})
    return pd.DataFrame(rows)


def month_times(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({"series_id": "s", "step": np.arange(n),
                         "timestamp": pd.date_range("2001-01-01", periods=n, freq="MS")})


def legend_texts(fig) -> list[str]:
    """The labels of a figure's one legend, which sits outside every axis (below the plots)."""
    (legend,) = fig.legends
    assert all(ax.get_legend() is None for ax in fig.axes)  # none inside a plot, over the data
    return [t.get_text() for t in legend.get_texts()]


def line(ax, label: str):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def test_labels_name_the_cell_and_a_files_columns():
    assert Labels.of("gru", DATED) == Labels("GRU", "sales", "month")
    assert Labels.of("rnn", {"source": "generate", "params": {"n_points": 1020}}) == Labels("RNN", "Value", "Time step")


def test_a_dated_series_is_drawn_on_dates_with_its_column_names_and_the_cells_name():
    df = predictions()
    fig = plot_predictions(df, CFG, Labels.of("lstm", DATED), month_times())
    ax = fig.axes[0]
    assert ax.get_xlabel() == "month" and ax.get_ylabel() == "sales"
    assert "LSTM" in ax.get_title()
    assert line(ax, "Predicted 1 step ahead (LSTM)") and line(ax, "Predicted 3 steps ahead (LSTM)")
    x = line(ax, "Actual").get_xdata()
    assert np.issubdtype(np.asarray(x).dtype, np.datetime64)
    assert pd.Timestamp(x[0]) == pd.Timestamp("2004-05-01")  # step 40 of a series from January 2001
    resid = plot_residuals(df, CFG, Labels.of("lstm", DATED), month_times()).axes[0]
    assert resid.get_xlabel() == "month" and "sales" in resid.get_ylabel()
    assert np.issubdtype(np.asarray(resid.get_lines()[0].get_xdata()).dtype, np.datetime64)


def test_steps_get_integer_ticks():
    fig = plot_predictions(predictions(n_origins=5, horizon=1), CFG)
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))
    by_lead = plot_error_by_lead({"model": {"mase": [0.5, 0.6, 0.7]}, "naive": {"mase": [1, 1.1, 1.2]}}, CFG)
    by_lead.canvas.draw()
    assert np.allclose(by_lead.axes[0].get_xticks(), np.round(by_lead.axes[0].get_xticks()))
    assert legend_texts(by_lead) == ["RNN", "Naive (last value)"]
    loss = plot_loss({"train_loss": [1.0, 0.5, 0.25], "val_loss": [1.1, 0.6, 0.3], "best_epoch": 3}, CFG,
                     Labels("GRU"))
    assert "GRU" in loss.axes[0].get_title()


def test_the_naive_line_runs_as_far_as_the_actual_line():
    df = predictions(horizon=4)
    ax = plot_predictions(df, CFG).axes[0]
    actual, naive = line(ax, "Actual").get_xdata(), line(ax, "Naive (last value)").get_xdata()
    assert list(naive) == list(actual)  # every target step, up to the last origin's last lead
    lead1 = df[df["lead"] == 1]
    shown = naive_one_step(df.drop_duplicates("step").sort_values("step"), lead1)
    assert shown["naive"].tolist() == pytest.approx((shown["step"] - 1) / 10)  # the value one step before


def test_the_forecast_figure_names_the_cell_and_the_column():
    hist = month_times().assign(value=np.sin(np.arange(60)))
    fc = pd.DataFrame({"series_id": "s", "lead": [1, 2], "step": [60, 61],
                       "timestamp": pd.date_range("2006-01-01", periods=2, freq="MS"), "forecast": [0.1, 0.2],
                       "lower_80": [0.0, 0.1], "upper_80": [0.2, 0.3]})
    ax = plot_forecast(hist, fc, CFG, 12, "GRU", DATED).axes[0]
    assert ax.get_ylabel() == "sales" and ax.get_xlabel() == "month" and ax.get_title().startswith("GRU forecast")
    assert line(ax, "Forecast (GRU)")


@pytest.mark.parametrize("sid", [r"$\invalidmathcmd$", "$x$ & $y$", "cost $5 - $7", r"a\$b"])
def test_labels_from_user_data_are_shown_as_written_never_read_as_mathtext(sid):
    """A series id or column that matplotlib would parse as mathtext draws as written (issue 22)."""
    import io

    from tasks.figures import plot_sample

    meta = {"source": "file", "params": {"time_column": "t$ime$", "value_column": r"$\frac{a}$"}}
    hist = month_times().assign(series_id=sid, value=np.sin(np.arange(60)))
    fc = pd.DataFrame({"series_id": sid, "lead": [1, 2], "step": [60, 61],
                       "timestamp": pd.date_range("2006-01-01", periods=2, freq="MS"), "forecast": [0.1, 0.2],
                       "lower_80": [0.0, 0.1], "upper_80": [0.2, 0.3]})
    fig = plot_forecast(hist, fc, CFG, 12, "GRU", meta)
    fig.savefig(io.BytesIO(), format="png")  # drawing is where mathtext would fail
    ax = fig.axes[0]
    shown = {t.get_text(): t for t in (ax.title, ax.xaxis.label, ax.yaxis.label)}
    for text, artist in shown.items():
        assert not artist._preprocess_math(text)[1], text  # not mathtext
    assert ax.title._preprocess_math(ax.get_title())[0].endswith(sid)  # the id as written
    frame = predictions().assign(series_id=sid)
    sample = plot_sample({"only": frame}, CFG, Labels.of("gru", meta))
    sample.savefig(io.BytesIO(), format="png")


def test_every_legend_sits_below_the_plots_never_over_the_data():
    df = predictions()
    fig = plot_predictions(df, FiguresConfig(dpi=40), Labels.of("lstm", DATED), month_times())  # the default size
    assert "Actual" in legend_texts(fig)
    fig.savefig(io.BytesIO(), format="png")  # lays the figure out as the stage does
    legend_box = fig.legends[0].get_window_extent()
    assert legend_box.y1 <= fig.axes[0].get_window_extent().y0  # entirely under the axes
    assert legend_texts(plot_loss({"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "best_epoch": 2}, CFG))


def test_error_by_lead_is_drawn_only_for_more_than_one_lead():
    hist = {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "best_epoch": 2}
    one = {"model": {"mase": [0.5]}, "naive": {"mase": [1.0]}}
    assert set(render_all(predictions(horizon=1), hist, CFG, one)) == {"prediction", "loss", "residuals"}
    three = {"model": {"mase": [0.5, 0.6, 0.7]}, "naive": {"mase": [1.0, 1.1, 1.2]}}
    assert "error_by_lead" in render_all(predictions(), hist, CFG, three)


def test_an_ensembles_loss_figure_shows_every_network():
    histories = {f"GRU-32 L24 seed {s}": {"train_loss": [1.0, 0.5 + s / 100, 0.4], "val_loss": [1.2, 0.7, 0.8],
                                          "best_epoch": 2} for s in (42, 43, 44)}
    fig = plot_losses(histories, CFG, Labels("hybrid of 3 networks and 3 statistical"),
                      "AutoETS, AutoTheta, seasonal naive: fitted, not trained")
    ax = fig.axes[0]
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]) == 3  # one training line each
    assert len([ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]) == 3  # one validation line each
    assert legend_texts(fig)[:3] == list(histories) and "fitted, not trained" in ax.get_title()
    hist = {"train_loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "best_epoch": 2}
    figs = render_all(predictions(horizon=1), hist, CFG, None, histories=histories)
    assert len(figs["loss"].axes[0].get_lines()) >= 6


def by_series(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame({"series_id": [f"store-{i}" for i in range(n)], "model_mase": rng.uniform(0.3, 1.0, n),
                         "naive_mase": rng.uniform(0.8, 2.0, n), "ets_mase": rng.uniform(0.4, 1.1, n)})


def test_mase_per_series_is_one_row_each_for_a_few_series_and_a_distribution_for_many():
    few = plot_series_mase(by_series(4), CFG).axes[0]
    assert [t.get_text() for t in few.get_yticklabels()] == list(  # every series named, the best at the top
        by_series(4).sort_values("model_mase", ascending=False)["series_id"])
    assert all(len(ln.get_xdata()) == 4 for ln in few.get_lines())  # a point per series and forecaster
    many = plot_series_mase(by_series(500), CFG)
    ax = many.axes[0]
    assert ax.get_ylabel() == "Share of series with at most this MASE" and len(ax.get_yticklabels()) < 20
    model = next(ln for ln in ax.get_lines() if ln.get_label().startswith("RNN"))
    assert np.all(np.diff(model.get_ydata()) >= 0) and model.get_ydata()[-1] == pytest.approx(1.0)


def test_the_forecast_figure_draws_a_panel_for_each_of_the_first_series():
    hist = pd.concat([month_times().assign(series_id=sid, value=np.sin(np.arange(60)) + i)
                      for i, sid in enumerate(["a", "b", "c", "d", "e"])])
    fc = pd.concat([pd.DataFrame({"series_id": sid, "lead": [1, 2], "step": [60, 61],
                                  "timestamp": pd.date_range("2006-01-01", periods=2, freq="MS"),
                                  "forecast": [0.1, 0.2], "lower_80": [0.0, 0.1], "upper_80": [0.2, 0.3]})
                    for sid in ["a", "b", "c", "d", "e"]])
    fig = plot_forecast(hist, fc, CFG, 12, "GRU", DATED)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d"]
    assert "4 of 5 series" in fig.get_suptitle() and "Forecast (GRU)" in legend_texts(fig)
