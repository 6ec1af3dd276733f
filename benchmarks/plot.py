"""The PNG plot: latency, CPU and memory against N, both systems (matplotlib, `bench` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from benchmarks.report import SATURATION_P99_MS, Point

STYLE = {"baseline": ("tab:blue", "o"), "service": ("tab:red", "s")}


def write_plot(points: Sequence[Point], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("added time to first chunk (ms)", ("ttfc_p50_ms", "ttfc_p99_ms"), True),
        ("word delay (ms)", ("word_p50_ms", "word_p99_ms"), True),
        ("CPU per reply (ms)", ("cpu_ms_per_reply",), False),
        ("peak memory of the processes (MB)", ("peak_mb",), False),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, (label, keys, log) in zip(axes.flat, panels, strict=True):
        for system, (color, marker) in STYLE.items():
            mine = sorted((p for p in points if p["system"] == system), key=lambda p: p["clients"])
            if not mine:
                continue
            xs = [p["clients"] for p in mine]
            for key in keys:
                dashed = key.endswith("p50_ms")
                name = system + (f" {key.split('_')[1]}" if len(keys) > 1 else "")
                ys = [max(p[key], 0.01) if log else p[key] for p in mine]
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    marker=marker,
                    linestyle="--" if dashed else "-",
                    label=name,
                )
        if keys[0].startswith("word"):
            ax.axhline(SATURATION_P99_MS, color="grey", linewidth=0.8, linestyle=":")
            ax.annotate(
                "saturation limit (p99)",
                (0.01, SATURATION_P99_MS),
                xycoords=("axes fraction", "data"),
                fontsize=8,
                color="grey",
            )
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("concurrent conversations (N)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
