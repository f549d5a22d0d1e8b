"""figures: the PNG files of the figures stage, the title each figure goes by in the report, and
where a figure's legend goes (below its plots: never over the data), shared by every figure the
figures and forecast stages draw."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def outside_legend(fig: "Figure", axes: Sequence["Axes"] | None = None, ncols: int = 3, extra=()) -> None:
    """One legend for the figure, below its plots (the constrained layout makes room for it), so
    that it never covers the data; entries of every axis in `axes` (default all), each label once,
    then `extra` handles."""
    handles, names = [], []
    for ax in axes if axes is not None else fig.axes:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            if name not in names:
                handles.append(handle)
                names.append(name)
    for handle in extra:
        handles.append(handle)
        names.append(handle.get_label())
    if handles:  # as many columns as fit the figure's width (about 0.6 em a character)
        from matplotlib import rcParams
        from matplotlib.font_manager import FontProperties

        size = FontProperties(size=rcParams["legend.fontsize"]).get_size_in_points()
        fits = int(fig.get_figwidth() * 72 / (0.6 * size) // (max(map(len, names)) + 8))
        fig.legend(handles, names, loc="outside lower center", ncols=max(1, min(len(handles), ncols, fits)),
                   frameon=False)
