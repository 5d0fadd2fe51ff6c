"""Report stage, forecasting figures: a forecasting model's held-out horizons -> inline SVG (capc.report.figures' way).

The held-out forecasts are those the local engine stored with the registered run (capc.state.held_out: each row's
time, series, horizon step, rolling-origin fold and seasonal-naive forecast), each made by a model trained only on
rows up to its fold's cut-off. Two figures:
- forecast against actual on the last held-out horizon (the last fold), one panel per series (the first MAX_SERIES
  in key order): the series' recent history, the actual values, the forecast and the seasonal-naive forecast over
  the horizon, which is shaded, with the cut-off as a dashed line;
- the error by horizon step: the mean absolute error of every stored forecast made that many steps ahead (all
  series, all folds), divided by the target's range as Azure normalizes it, beside the seasonal-naive forecast's.
Pure: the history and the model's settings come in as plain values; nothing here reads the disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from capc.report.figures import AUTOML_COLOUR, STOPPED_COLOUR, SWEEP_COLOUR, _figure, _short, _style, _svg

MAX_SERIES = 4  # series drawn in the forecast figure
HISTORY_HORIZONS = 3  # horizons of history drawn before the cut-off
HORIZON_SHADE = "#f3e3c8"


@dataclass(frozen=True)
class HeldOutForecasts:
    """The stored held-out forecasts, one entry per forecast row, and the model settings that place them."""

    target: str
    horizon: int
    times: list  # pandas Timestamps
    series: list[str]  # the row's series key (capc.forecasting.series_keys: id values joined with "|"; "" for one series)
    steps: list[int]  # 1 = the first step after the cut-off
    origins: list  # the cut-off each forecast was made from (the last time of its history)
    folds: list[int]  # the rolling-origin fold (0 = the oldest)
    y_true: np.ndarray
    y_pred: np.ndarray
    baseline: np.ndarray | None  # the seasonal-naive forecast of each row

    @classmethod
    def of(cls, forecast: dict, y_true, y_pred, settings: dict) -> "HeldOutForecasts":
        """`forecast`: the stored per-row fields; `settings`: the model's (its MLmodel metadata: target, horizon,
        frequency)."""
        import pandas as pd
        from pandas.tseries.frequencies import to_offset

        offset = to_offset(settings["frequency"])
        times = list(pd.to_datetime(forecast["times"]))
        steps = [int(s) for s in forecast["steps"]]
        baseline = forecast.get("baseline")
        return cls(
            target=settings["target"], horizon=int(settings["horizon"]), times=times,
            series=[str(s) for s in forecast["series"]], steps=steps, origins=[t - offset * s for t, s in zip(times, steps)],
            folds=[int(f) for f in (forecast.get("fold_index") or [0] * len(times))],
            y_true=np.asarray(y_true, dtype=float), y_pred=np.asarray(y_pred, dtype=float),
            baseline=None if baseline is None else np.asarray(baseline, dtype=float),
        )

    @property
    def last_fold(self) -> int:
        return max(self.folds)

    @property
    def last_origin(self):
        return max(o for o, f in zip(self.origins, self.folds) if f == self.last_fold)

    def shown_series(self) -> list[str]:
        return sorted(set(self.series))[:MAX_SERIES]

    def at_last_fold(self, series: str) -> tuple[list, np.ndarray, np.ndarray, np.ndarray | None]:
        """(times, actual, forecast, seasonal naive) of `series` over the last held-out horizon, in time order."""
        rows = sorted((t, i) for i, (t, s, f) in enumerate(zip(self.times, self.series, self.folds)) if s == series and f == self.last_fold)
        keep = [i for _, i in rows]
        baseline = None if self.baseline is None else self.baseline[keep]
        return [t for t, _ in rows], self.y_true[keep], self.y_pred[keep], baseline


def error_by_step(held_out: HeldOutForecasts, y_range: float | None) -> list[tuple[int, float, float | None, int]]:
    """(step, the forecasts' mean absolute error, the seasonal-naive forecasts', forecasts) per horizon step; both
    divided by y_range when there is one."""
    steps = np.asarray(held_out.steps)
    scale = y_range if y_range and y_range > 0 else 1.0
    errors = np.abs(held_out.y_true - held_out.y_pred)
    naive = None if held_out.baseline is None else np.abs(held_out.y_true - held_out.baseline)
    out = []
    for step in sorted(set(held_out.steps)):
        chosen = (steps == step) & np.isfinite(errors)
        if chosen.any():
            baseline = None
            if naive is not None and np.isfinite(naive[chosen]).any():
                baseline = float(np.nanmean(naive[chosen]) / scale)
            out.append((int(step), float(errors[chosen].mean() / scale), baseline, int(chosen.sum())))
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
    times, actual, forecast, baseline = held_out.at_last_fold(series)
    past_times, past_values = history
    keep = HISTORY_HORIZONS * held_out.horizon
    past_times, past_values = list(past_times)[-keep:], list(past_values)[-keep:]
    origin = held_out.last_origin
    if times:
        axes.axvspan(origin, times[-1], color=HORIZON_SHADE, alpha=0.7, linewidth=0, label="held-out horizon")
    axes.axvline(origin, color="#444444", linestyle="--", linewidth=0.9, label="cut-off")
    if past_times:
        axes.plot(past_times, past_values, color="#555555", linewidth=1.2, label="history")
    axes.plot(times, actual, color=AUTOML_COLOUR, linewidth=1.6, marker="o", markersize=3, label="actual")
    axes.plot(times, forecast, color=SWEEP_COLOUR, linewidth=1.6, linestyle="--", marker="s", markersize=3, label="forecast")
    if baseline is not None:
        axes.plot(times, baseline, color=STOPPED_COLOUR, linewidth=1.0, linestyle=":", label="seasonal naive")
    axes.set_title(_short(series, 40) if series else held_out.target, fontsize=9)
    axes.set_ylabel(_short(held_out.target, 24))
    axes.tick_params(axis="x", labelrotation=30, labelsize=7)


def error_by_horizon_step(errors: list[tuple[int, float, float | None, int]], metric_name: str) -> str:
    steps = np.array([step for step, _, _, _ in errors], dtype=float)
    with_baseline = all(naive is not None for _, _, naive, _ in errors)
    width = 0.38 if with_baseline else 0.6
    with _style():
        figure, axes = _figure(5.6, 3.4)
        offset = width / 2 if with_baseline else 0.0
        axes.bar(steps - offset, [value for _, value, _, _ in errors], width=width, color=AUTOML_COLOUR, label="forecast")
        if with_baseline:
            axes.bar(steps + offset, [naive for _, _, naive, _ in errors], width=width, color=STOPPED_COLOUR, label="seasonal naive")
        for (step, value, _, _), x in zip(errors, steps - offset):
            axes.annotate(f"{value:.3g}", (x, value), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=7)
        axes.set_xticks(steps, [str(int(s)) for s in steps])
        axes.set_xlabel("steps after the cut-off")
        axes.set_ylabel(metric_name)
        axes.set_title(f"error by horizon step ({sum(c for _, _, _, c in errors):,} held-out forecasts)")
        axes.grid(axis="x", visible=False)
        axes.legend(loc="upper left", fontsize=7)
        return _svg(figure, "horizon-error")


def _day(stamp) -> str:
    import pandas as pd

    stamp = pd.Timestamp(stamp)
    return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else stamp.isoformat()
