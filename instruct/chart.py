"""The PNG beside the dataset card: the length distribution of each task's rows and the realized mix.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state). The axes sit at
fixed places, sized for the longest task name, and the titles at a fixed height, so nothing measures the text to
lay the figure out; tick labels are plain numbers, so no mathtext parser is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, MaxNLocator, NullFormatter, NullLocator

from instruct.rundir import atomic_open

# Axes rectangles (left, bottom, width, height) as fractions of the 1200 x 450 pixel figure: the gap between
# them holds the task names of the mix (up to ~20 characters), the right axes' title its two lines.
_LENGTHS_AT = (0.055, 0.12, 0.56, 0.8)
_MIX_AT = (0.755, 0.12, 0.225, 0.74)
_BINS = 60


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 steps (…, 50, 100, 200, 500, 1000, …) within [low, high], or evenly spaced round numbers when that
    leaves fewer than three (a narrow range): a log axis labelled in plain numbers."""
    powers = range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
    ticks = [step * 10 ** power for power in powers for step in (1, 2, 5) if low <= step * 10 ** power <= high]
    if len(ticks) < 3:
        ticks = [tick for tick in MaxNLocator(5).tick_values(low, high) if low <= tick <= high]
    return ticks


def write_chart(path: Path, stats: dict, manifest: dict) -> None:
    """Args: stats: task → card.TaskRows; the mix comes from the rows counted there (Dolly included)."""
    figure = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    lengths, mix = figure.add_axes(_LENGTHS_AT), figure.add_axes(_MIX_AT)
    totals = {task: np.maximum(np.add(entry.prompt_chars, entry.response_chars), 1)
              for task, entry in stats.items() if entry.prompt_chars}
    if totals:
        low = min(int(values.min()) for values in totals.values())
        top = max(int(values.max()) for values in totals.values())
        bins = np.geomspace(low * 0.95, max(top, low + 1) * 1.05, _BINS)
        for task, values in totals.items():
            lengths.stairs(np.histogram(values, bins)[0], bins, linewidth=1.4, label=task)
        lengths.set_xscale("log")
        lengths.set_xlim(bins[0], bins[-1])
        lengths.xaxis.set_major_locator(FixedLocator(_log_ticks(bins[0], bins[-1])))
        lengths.xaxis.set_major_formatter("{x:.15g}")
        lengths.xaxis.set_minor_locator(NullLocator())
        lengths.xaxis.set_minor_formatter(NullFormatter())
        lengths.legend(fontsize=8)
    lengths.set_xlabel("characters per row (prompt + response)")
    lengths.set_ylabel("rows")
    lengths.yaxis.set_major_locator(MaxNLocator("auto", steps=[1, 2, 5, 10], integer=True))  # whole rows
    lengths.set_title("Length distribution per task", y=1)
    names = list(stats)[::-1]  # the first task on top
    rows = [stats[name].rows for name in names]
    total = sum(rows) or 1
    bars = mix.barh(names, rows, color=["#999999" if name == "dolly" else "#4477aa" for name in names])
    mix.bar_label(bars, labels=[f"{count} ({count / total:.1%})" for count in rows], fontsize=8, padding=2)
    mix.set_xlim(0, max(rows or [1]) * 1.6)
    mix.set_xticks([])  # each bar is labelled with its rows
    mix.set_xlabel("rows (share of all rows)")
    mix.set_title(f"Realized mix: {total} rows\nDolly {manifest['mix']['realized_dolly_fraction']:.1%} "
                  f"(asked {manifest['mix']['requested_dolly_fraction']:.0%})", fontsize=11, y=1)
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png")
