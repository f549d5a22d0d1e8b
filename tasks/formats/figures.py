"""figures: the PNG files of the figures stage."""

from __future__ import annotations

FIGURES = ("prediction", "loss", "residuals", "error_by_lead", "series_mase")  # series_mase: many series only


def figure_file(name: str) -> str:
    """The file of figure `name` within a figures entry."""
    return f"figures/{name}.png"
