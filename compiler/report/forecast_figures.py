"""Report stage, forecasting figures: a forecasting model's held-out horizons -> inline SVG (capc.report.figures' way).

The held-out forecasts are those the engine stored with the registered run (capc.state.held_out, split
"rolling_origin"): each made from a model trained only on rows up to its cut-off, for the `horizon` steps after it.
Two figures:
- forecast against actual on the last held-out horizon, one panel per series (the first MAX_SERIES in id order):
  the series' recent history, the actual values and the forecast over the horizon, which is shaded, with the cut-off
  as a dashed line;
- the error by horizon step: the mean absolute error of every stored forecast made that many steps ahead, divided
  by the target's range as Azure normalizes it, so the steps compare across series of different scales.
Pure: the history comes in as plain rows; nothing here reads the disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from capc.report.figures import AUTOML_COLOUR, SWEEP_COLOUR, _figure, _short, _style, _svg

MAX_SERIES = 4  # series drawn in the forecast figure
HISTORY_HORIZONS = 3  # horizons of history drawn before the cut-off
HORIZON_SHADE = "#f3e3c8"


@dataclass(frozen=True)
class HeldOutForecasts:
    """The stored held-out forecasts, one entry per forecast row (capc.state.held_out's `forecast` fields)."""

    time_column: str
    target: str
    horizon: int
    times: list  # numpy datetime64 per row
    series: list[str]  # the row's series key (its id values joined with "|"; "" for a single series)
    steps: list[int]  # 1 = the first step after the cut-off
    origins: list  # the cut-off each forecast was made from (the last time of its history)
    y_true: np.ndarray
    y_pred: np.ndarray

    @classmethod
    def of(cls, forecast: dict, y_true, y_pred) -> "HeldOutForecasts":
        import pandas as pd

        return cls(
            time_column=forecast["time_column"], target=forecast["target"], horizon=int(forecast["horizon"]),
            times=list(pd.to_datetime(forecast["times"])), series=[str(s) for s in forecast["series"]],
            steps=[int(s) for s in forecast["steps"]], origins=list(pd.to_datetime(forecast["origins"])),
            y_true=np.asarray(y_true, dtype=float), y_pred=np.asarray(y_pred, dtype=float),
        )

    @property
    def last_origin(self):
        return max(self.origins)

    def shown_series(self) -> list[str]:
        return sorted(set(self.series))[:MAX_SERIES]

    def at_last_origin(self, series: str) -> tuple[list, np.ndarray, np.ndarray]:
        """(times, actual, forecast) of `series` over the last held-out horizon, in time order."""
        last = self.last_origin
        rows = sorted((t, i) for i, (t, s, o) in enumerate(zip(self.times, self.series, self.origins)) if s == series and o == last)
        keep = [i for _, i in rows]
        return [t for t, _ in rows], self.y_true[keep], self.y_pred[keep]


def error_by_step(held_out: HeldOutForecasts, y_range: float | None) -> list[tuple[int, float, int]]:
    """(step, mean absolute error / y_range (or the raw MAE without a range), forecasts) per horizon step."""
    steps = np.asarray(held_out.steps)
    errors = np.abs(held_out.y_true - held_out.y_pred)
    scale = y_range if y_range and y_range > 0 else 1.0
    out = []
    for step in sorted(set(held_out.steps)):
        chosen = errors[(steps == step) & np.isfinite(errors)]
        if len(chosen):
            out.append((int(step), float(chosen.mean() / scale), int(len(chosen))))
    return out


def forecast_against_actual(held_out: HeldOutForecasts, history: dict[str, tuple[list, list]]) -> str:
    """One panel per shown series. `history`: series label -> (times, values) of its rows up to the last cut-off (an
    empty pair when the training table could not be read: the panel then shows the horizon only)."""
    shown = held_out.shown_series()
    columns = 2 if len(shown) > 1 else 1
    rows = math.ceil(len(shown) / columns)
    with _style():
        figure, _ = _figure(5.0 * columns, 2.8 * rows, subplots=False)
        for k, series in enumerate(shown):
            axes = figure.add_subplot(rows, columns, k + 1)
            _draw_series(axes, held_out, series, history.get(series, ([], [])))
            if k == 0:
                axes.legend(loc="best", fontsize=7)
        figure.suptitle(f"forecast against actual on the last held-out horizon ({held_out.horizon} steps, cut-off "
                        f"{_day(held_out.last_origin)})", fontsize=10)
        figure.tight_layout()
        return _svg(figure, "forecast")


def _draw_series(axes, held_out: HeldOutForecasts, series: str, history: tuple[list, list]) -> None:
    times, actual, forecast = held_out.at_last_origin(series)
    past_times, past_values = history
    keep = HISTORY_HORIZONS * held_out.horizon
    past_times, past_values = list(past_times)[-keep:], list(past_values)[-keep:]
    origin = held_out.last_origin
    if times:
        axes.axvspan(origin, times[-1], color=HORIZON_SHADE, alpha=0.7, linewidth=0, label="held-out horizon")
    axes.axvline(origin, color="#444444", linestyle="--", linewidth=0.9, label="cut-off")
    if past_times:
        axes.plot(past_times + times[:1], past_values + list(actual[:1]), color="#555555", linewidth=1.2, label="history")
    axes.plot(times, actual, color=AUTOML_COLOUR, linewidth=1.6, marker="o", markersize=3, label="actual")
    axes.plot(times, forecast, color=SWEEP_COLOUR, linewidth=1.6, linestyle="--", marker="s", markersize=3, label="forecast")
    axes.set_title(_short(series, 40) if series else held_out.target, fontsize=9)
    axes.set_ylabel(_short(held_out.target, 24))
    axes.tick_params(axis="x", labelrotation=30, labelsize=7)


def error_by_horizon_step(errors: list[tuple[int, float, int]], metric_name: str) -> str:
    steps = [step for step, _, _ in errors]
    values = [value for _, value, _ in errors]
    with _style():
        figure, axes = _figure(5.2, 3.2)
        axes.bar(steps, values, color=AUTOML_COLOUR, width=0.6)
        for step, value, count in errors:
            axes.annotate(f"{value:.3g}", (step, value), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
        axes.set_xticks(steps, [str(s) for s in steps])
        axes.set_xlabel("steps after the cut-off")
        axes.set_ylabel(metric_name)
        axes.set_title(f"error by horizon step ({sum(c for _, _, c in errors):,} held-out forecasts)")
        axes.grid(axis="x", visible=False)
        return _svg(figure, "horizon-error")


def _day(stamp) -> str:
    import pandas as pd

    stamp = pd.Timestamp(stamp)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()
