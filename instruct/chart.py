"""The PNG beside the dataset card: the length distribution of each task's rows and the realized mix.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from instruct.rundir import atomic_open


def write_chart(path: Path, stats: dict, manifest: dict) -> None:
    """Args: stats: task → card.TaskRows; the mix comes from the rows counted there (Dolly included)."""
    figure = Figure(figsize=(12, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    lengths, mix = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    totals = {task: np.add(entry.prompt_chars, entry.response_chars) for task, entry in stats.items() if entry.prompt_chars}
    if totals:
        low = max(1, min(int(values.min()) for values in totals.values()))
        top = max(int(values.max()) for values in totals.values())
        bins = np.geomspace(low * 0.95, max(top, low + 1) * 1.05, 60)
        for task, values in totals.items():
            lengths.hist(np.maximum(values, 1), bins=bins, histtype="step", linewidth=1.4, label=task)
        lengths.set_xscale("log")
        lengths.legend(fontsize=8)
    lengths.set_xlabel("characters per row (prompt + response)")
    lengths.set_ylabel("rows")
    lengths.set_title("Length distribution per task")
    names = list(stats)
    rows = [stats[name].rows for name in names]
    total = sum(rows) or 1
    bars = mix.barh(names[::-1], rows[::-1], color=["#999999" if n == "dolly" else "#4477aa" for n in names[::-1]])
    mix.bar_label(bars, labels=[f"{r} ({r / total:.1%})" for r in rows[::-1]], fontsize=8, padding=2)
    mix.set_xlim(0, max(rows or [1]) * 1.35)
    mix.set_xlabel("rows")
    mix.set_title(f"Realized mix: {total} rows, Dolly {manifest['mix']['realized_dolly_fraction']:.1%} "
                  f"(asked {manifest['mix']['requested_dolly_fraction']:.0%})")
    figure.tight_layout()
    with atomic_open(path) as handle:
        figure.savefig(handle, format="png")
