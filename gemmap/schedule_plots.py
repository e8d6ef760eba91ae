"""Plots of fused vs unfused schedules (matplotlib, Agg backend; PNG and SVG side by side).

* :func:`plot_schedule` — (a) per site, stacked bars of compute / memory / normalization time of
  one instance, unfused next to fused; (b) a Gantt timeline of one encoder layer (every op of the
  workload once per layer: its repeat divided by the smallest repeat) under ``none`` and ``auto``,
  with the matmuls on the array lane and the non-linear ops on the unit/CPU lane.
* :func:`plot_ratio` — fused/unfused latency of each site against sequence length, one line per
  accumulator size (infeasible points are left out and marked on the axis).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gemmap.mapper import LayerResult  # noqa: E402
from gemmap.report import atomic_write  # noqa: E402
from gemmap.schedule import ScheduleResult  # noqa: E402

COLORS = {"compute": "#4c72b0", "memory": "#dd8452", "normalization": "#55a868"}


def save_figure(fig, path: str | Path) -> list[Path]:
    """Write ``fig`` as PNG and SVG next to each other (``path``'s suffix is replaced)."""
    base = Path(path)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".svg") else base
    out = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight")
        target = base.with_name(f"{base.name}.{ext}")
        atomic_write(target, buf.getvalue())
        out.append(target)
    plt.close(fig)
    return out


def _per_layer(rows: tuple[LayerResult, ...]) -> list[tuple[LayerResult, int]]:
    unit = min(x.repeat for x in rows)
    return [(x, max(1, x.repeat // unit)) for x in rows]


def _gantt(ax, result: ScheduleResult, policy: str) -> None:
    """One encoder layer: ops in order, each repeated instance back to back, overlap where fused."""
    rows = result.layers(policy)
    t = 0.0
    lanes = {"array": 1, "unit": 0}
    fused_sites = {s.site.producer.name: s for s, f in zip(result.sites, result.choice(policy)) if f}
    for x, count in _per_layer(rows):
        dur = x.cycles * count
        if x.macs:
            ax.barh(lanes["array"], dur, left=t, color=COLORS["compute"], edgecolor="white", linewidth=0.5)
            if dur > 0.04 * max(1, result.total(policy).cycles):
                ax.text(
                    t + dur / 2,
                    lanes["array"],
                    x.name + (f" x{count}" if count > 1 else ""),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white",
                )
            site = fused_sites.get(x.name)
            if site is not None and site.site.row_wise:
                # the unit works on block i while the array computes block i+1: draw it alongside
                first = x.cycles / max(1, -(-site.site.producer.M // site.fused.matmul.mapping.local[0]))  # type: ignore[union-attr]
                ax.barh(lanes["unit"], dur - first, left=t + first, color=COLORS["normalization"], alpha=0.35)
            t += dur
        else:
            color = COLORS["memory"] if x.op == "add" else COLORS["normalization"]
            ax.barh(lanes["unit"], dur, left=t, color=color, edgecolor="white", linewidth=0.5)
            t += dur
    ax.set_yticks([0, 1], ["norm unit / CPU", "array + DMA"])
    ax.set_xlabel("cycles (one encoder layer)")
    total = t
    ax.set_title(f"fusion {policy}: {total:,.0f} cycles per layer", fontsize=9)


def plot_schedule(result: ScheduleResult, path: str | Path) -> list[Path]:
    """Stacked bars per site (fused vs unfused) and the Gantt of one layer under none and auto."""
    fig = plt.figure(figsize=(12, 8))
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 1, 1])
    ax = fig.add_subplot(grid[0])
    labels, x = [], 0.0
    for s in result.sites:
        for name, sched in (("unfused", s.unfused), ("fused", s.fused)):
            labels.append(f"{s.site.name}\n{name}")
            if sched is None:
                ax.text(x, 0, "infeasible", rotation=90, ha="center", va="bottom", fontsize=8)
            else:
                bottom = 0.0
                for part, val in (
                    ("compute", sched.compute_cycles),
                    ("memory", sched.memory_cycles),
                    ("normalization", sched.norm_cycles),
                ):
                    ax.bar(x, val, bottom=bottom, color=COLORS[part], label=part if x == 0 else None, width=0.7)
                    bottom += val
            x += 1.0
        x += 0.5
    ticks = [i + 0.5 * (i // 2) for i in range(len(labels))]
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_ylabel("cycles per instance")
    ax.set_title(
        f"{result.workload_name} on {result.arch.name} (acc {result.arch.accumulator.kib} KiB): fused vs unfused",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    for i, policy in enumerate(("none", "auto")):
        _gantt(fig.add_subplot(grid[i + 1]), result, policy)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_ratio(
    series: dict[str, dict[int, list[tuple[int, float | None]]]], title: str, path: str | Path
) -> list[Path]:
    """``series[site][acc_kib]`` = [(seq_len, fused/unfused latency or None if infeasible)]."""
    sites = list(series)
    fig, axes = plt.subplots(1, len(sites), figsize=(3.6 * len(sites), 3.4), squeeze=False, sharey=True)
    for ax, site in zip(axes[0], sites):
        for acc, pts in sorted(series[site].items()):
            ok = [(s, r) for s, r in pts if r is not None]
            line = ax.plot([s for s, _ in ok], [r for _, r in ok], marker="o", label=f"acc {acc} KiB")[0]
            bad = [s for s, r in pts if r is None]
            if bad:
                ax.plot(bad, [1.0] * len(bad), "x", color=line.get_color(), markersize=8)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xscale("log", base=2)
        ax.set_title(site, fontsize=9)
        ax.set_xlabel("sequence length")
    axes[0][0].set_ylabel("fused / unfused latency (x: infeasible)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
