"""The report's PNG plots, from the figures ``report.py`` gathered (matplotlib, no display)."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import ticker

PLAIN = ticker.FuncFormatter(lambda value, _pos: f"{value:g}")

Figures = Mapping[str, Any]


def latency(sweeps: Mapping[str, Sequence[Figures]], path: pathlib.Path) -> None:
    """Admission and end-to-end latency (median and p99) against the submission rate."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, title in (
        (axes[0], "admission", "Admission latency (Run created → Job)"),
        (axes[1], "endToEnd", "End-to-end latency (Run created → Succeeded)"),
    ):
        for runner, results in sweeps.items():
            rates = [r["offeredRate"] for r in results]
            (line,) = ax.plot(rates, [r[f"{key}Median"] for r in results], "o-", label=runner)
            ax.plot(
                rates,
                [r[f"{key}P99"] for r in results],
                "s--",
                color=line.get_color(),
                label=f"{runner} p99",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(PLAIN)
            axis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("Runs submitted per second")
        ax.set_ylabel("seconds")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def throughput(bars: Sequence[tuple[str, float]], path: pathlib.Path) -> None:
    """Sustained rates side by side: the plain-Job ceilings and Bosun's throughput."""
    fig, ax = plt.subplots(figsize=(8, 3.6), constrained_layout=True)
    labels = [label for label, _ in bars]
    values = [value for _, value in bars]
    colors = [_color(label) for label in labels]
    drawn = ax.barh(labels, values, color=colors)
    ax.bar_label(drawn, fmt="%.2f", fontsize=8, padding=3)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PLAIN)
    ax.set_xlabel("per second (log scale)")
    ax.invert_yaxis()
    ax.set_title("Sustained throughput against the ceiling", fontsize=10)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _color(label: str) -> str:
    """Grey for the plain-Job ceilings, blue for Bosun's operator path, orange for the runner."""
    if label.startswith("plain"):
        return "#8c8c8c"
    return "#e3752b" if "real" in label else "#2b7bba"


def memory(samples: Sequence[Figures], path: pathlib.Path) -> None:
    """Operator RSS against the number of Runs present."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    runs = [s["runs"] for s in samples]
    ax.plot(runs, [s["rss_kib"] / 1024 for s in samples], "o-", label="RSS (settled)")
    ax.plot(runs, [s["peak_kib"] / 1024 for s in samples], "s--", label="peak RSS (VmHWM)")
    ax.set_xlabel("finished Runs present")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)
    ax.set_title("Operator memory", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
