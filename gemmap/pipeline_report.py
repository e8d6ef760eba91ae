"""Tables (≤ 100 columns) and the steady-state Gantt plot of ``gemmap pipeline``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from rich.table import Table  # noqa: E402

from gemmap.pipeline import PipelineResult  # noqa: E402
from gemmap.report import compact_table, eng  # noqa: E402
from gemmap.schedule_plots import save_figure  # noqa: E402


def stage_table(r: PipelineResult) -> Table:
    """One row per stage: accelerator, its units, cycles, busy time, utilization, DRAM share, energy."""
    b = r.best
    table = compact_table(
        f"{r.workload_name}: {len(r.stages)} stages, objective {r.objective}, cuts at {r.cuts}",
        ("#", "arch", "units", "n", "cycles", "busy", "of P", "util", "DRAM", "energy"),
        left=("arch", "units"),
    )
    total_dram = sum(b.dram_bytes) or 1.0
    for j, s in enumerate(r.stages):
        table.add_row(
            str(j), s.instance, s.layers, str(len(s.units)), eng(s.cycles), eng(s.busy_s, "s"),
            f"{s.busy_s / b.period_s:.0%}", f"{s.utilization:.0%}", f"{s.dram_bytes / total_dram:.0%}",
            eng(s.energy_pj * 1e-12, "J"),
        )  # fmt: skip
    table.caption = (
        "units: first … last (matmul@block); busy: time per inference; of P: share of the period; "
        "util: PE array; DRAM: share of the channel's bytes"
    )
    return table


def summary_table(r: PipelineResult) -> Table:
    """Pipelined against each accelerator alone, data-parallel and PipeBERT's binary search."""
    best_alone = max(a.evaluation.throughput for a in r.alone)
    table = compact_table(
        f"{r.workload_name}: throughput, latency and energy per inference",
        ("configuration", "inf/s", "vs best alone", "latency", "energy", "E×lat J·s", "E×P J·s"),
        left=("configuration",),
    )

    def row(name: str, thr: float, lat: float | None, energy_pj: float, edp: float | None) -> None:
        table.add_row(
            name, f"{thr:.3g}", f"{thr / best_alone - 1:+.1%}", eng(lat, "s") if lat is not None else "-",
            eng(energy_pj * 1e-12, "J"), f"{edp:.3g}" if edp is not None else "-", f"{energy_pj * 1e-12 / thr:.3g}",
        )  # fmt: skip

    b, f = r.best, r.fastest
    row(f"pipelined (exact, {r.objective})", b.throughput, b.latency_s, b.energy_total_pj, b.edp)
    if f.partition != b.partition:
        row("pipelined (exact, throughput)", f.throughput, f.latency_s, f.energy_total_pj, f.edp)
    bs = r.bisection.best
    row(f"binary search ({r.bisection.evaluations} evals)", bs.throughput, bs.latency_s, bs.energy_total_pj, bs.edp)
    for a in r.alone:
        e = a.evaluation
        row(f"{a.instance} alone", e.throughput, e.latency_s, e.energy_total_pj, e.edp)
    dp = r.data_parallel
    row("data-parallel", dp.throughput, None, dp.energy_per_inference_pj, None)
    gap = 1 - bs.throughput / f.throughput
    table.caption = (
        "E×lat: energy × latency of one inference; E×P: energy × period (one result per period); "
        f"exact over {r.partitions:,} partitions; binary search {gap:.2%} below the fastest; shared DRAM "
        f"{eng(r.bandwidth, 'B/s')}{' (binds)' if b.dram_bound else ''}"
    )
    return table


#: columns the tables drop first when the terminal is narrow (the JSON keeps them)
STAGE_DROPPABLE = ("energy", "n", "util")
SUMMARY_DROPPABLE = ("E×lat J·s", "energy")


def plot_gantt(r: PipelineResult, path: str | Path, periods: int = 4) -> list[Path]:
    """The steady state: one lane per stage; in period t stage j works on inference t − j, busy for its
    own time (solid) and stretched by the shared DRAM channel (hatched), idle for the rest."""
    b = r.best
    P = b.period_s
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.7 * len(r.stages)))
    colors = plt.get_cmap("tab10").colors
    working = [j for j, s in enumerate(r.stages) if s.units]  # an idle instance holds no inference
    for j, s in enumerate(r.stages):
        y = len(r.stages) - 1 - j
        for t in range(periods):
            inf = t - working.index(j) if j in working else -1
            if inf < 0:
                continue
            c = colors[inf % len(colors)]
            ax.barh(y, s.busy_s * 1e3, left=t * P * 1e3, color=c, edgecolor="black", linewidth=0.5)
            if s.stage_s > s.busy_s:
                ax.barh(y, (s.stage_s - s.busy_s) * 1e3, left=(t * P + s.busy_s) * 1e3, color=c, alpha=0.35,
                        hatch="//", edgecolor="black", linewidth=0.5)  # fmt: skip
            ax.text((t * P + s.busy_s / 2) * 1e3, y, f"inf {inf}", ha="center", va="center", fontsize=8)
    for t in range(periods + 1):
        ax.axvline(t * P * 1e3, color="grey", linewidth=0.6, linestyle="--")
    ax.set_yticks(
        range(len(r.stages)),
        [f"stage {j}: {s.instance}\n{s.layers}" for j, s in reversed(list(enumerate(r.stages)))],
        fontsize=8,
    )
    ax.set_xlim(0, periods * P * 1e3 * 1.02)
    ax.set_xlabel("time (ms); dashed lines: period boundaries")
    ax.set_title(
        f"{r.workload_name} pipelined: period {P * 1e3:.3g} ms ({b.throughput:.3g} inf/s), "
        f"latency {b.latency_s * 1e3:.3g} ms" + (" — DRAM-bound (hatched: channel wait)" if b.dram_bound else ""),
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path)
