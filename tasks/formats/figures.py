"""figures: the PNG files of the figures stage, and the title each figure goes by in the report."""

from __future__ import annotations

FIGURES = ("prediction", "loss", "residuals", "error_by_lead", "series_mase")  # series_mase: many series only
TITLES = {
    "prediction": "Forecasts on the test range",
    "loss": "Training and validation loss",
    "residuals": "Residuals on the test range",
    "error_by_lead": "Error by lead time",
    "series_mase": "MASE per series",
    "forecast": "Forecast past the end of the series",
}


def figure_file(name: str) -> str:
    """The file of figure `name` within a figures entry."""
    return f"figures/{name}.png"


def figure_title(name: str) -> str:
    """A figure's heading in the report ("error_by_lead" -> "Error by lead time")."""
    return TITLES.get(name, name.replace("_", " ").capitalize())


def plain(text: object) -> str:
    """A label from user data (a series id, a column name) as matplotlib shows it literally:
    every "$" escaped, so that no pair of them is read as mathtext ("$\\invalidmathcmd$" is
    shown as written instead of failing the figure)."""
    return str(text).replace("$", r"\$")
