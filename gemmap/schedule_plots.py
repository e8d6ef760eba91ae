"""Plots of fused vs unfused schedules (PNG and SVG side by side).

* :func:`schedule_figure` — (a) per site, stacked bars of compute / memory / normalization time
  over the whole model (one instance's time × its instances, so a site's bar is its share of the
  model), unfused next to fused, each labelled with its per-instance cycles; (b) a labelled Gantt
  timeline of one encoder layer (every op of the workload once per layer: its repeat divided by
  the smallest repeat) under ``none`` and ``auto``, with the matmuls on the array lane and the
  non-linear ops on the unit/CPU lane, and a legend for every colour.
* :func:`ratio_figure` — fused/unfused latency of each site against sequence length, one line per
  accumulator size; where fusion is infeasible a strip under the panel marks the point.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from gemmap.figures import laid_out, new_figure, place_labels, save, si, si_axis, wrap  # noqa: E402
from gemmap.mapper import LayerResult  # noqa: E402
from gemmap.schedule import ScheduleResult, SiteResult  # noqa: E402

COLORS = {"compute": "#4c72b0", "memory": "#dd8452", "normalization": "#55a868"}
#: Gantt colours: what runs where (every one is in the legend)
LANE_COLORS = {
    "matmul on the array (+ DMA)": "#4c72b0",
    "non-linear op on the normalization unit": "#55a868",
    "non-linear op on the host CPU": "#8172b3",
    "residual add (bias preload by DMA)": "#dd8452",
    "fused: unit overlaps the next row block": "#b9dcc2",
}
OBJECTIVES = {"edp": "EDP", "latency": "latency", "energy": "energy"}


def save_figure(fig, path: str | Path) -> list[Path]:
    """Write a pyplot ``fig`` as PNG and SVG, cropped to its content, and close it."""
    import matplotlib.pyplot as plt

    out = save(fig, path, tight=True)
    plt.close(fig)
    return out


def _per_layer(rows: tuple[LayerResult, ...]) -> list[tuple[LayerResult, int]]:
    unit = min(x.repeat for x in rows)
    return [(x, max(1, x.repeat // unit)) for x in rows]


def _kind(x: LayerResult) -> str:
    """Which :data:`LANE_COLORS` entry a row is drawn in."""
    if x.macs:
        return "matmul on the array (+ DMA)"
    if x.op == "add":
        return "residual add (bias preload by DMA)"
    if x.bound == "CPU" or "host CPU" in x.note:
        return "non-linear op on the host CPU"
    return "non-linear op on the normalization unit"


def _gantt(ax, result: ScheduleResult, policy: str) -> tuple[list, set[str]]:
    """One encoder layer: ops in order, each repeated instance back to back, overlap where fused.
    Returns the labels that did not fit their segment (to place outside) and the colours used."""
    t = 0.0
    fused_sites = {s.site.producer.name: s for s, f in zip(result.sites, result.choice(policy)) if f}
    outside, used = [], set()
    for x, count in _per_layer(result.layers(policy)):
        dur, kind = x.cycles * count, _kind(x)
        if dur <= 0:
            continue
        lane = 1 if x.macs else 0
        ax.barh(lane, dur, left=t, height=0.8, color=LANE_COLORS[kind], edgecolor="white", linewidth=0.5)
        used.add(kind)
        outside.append((t + dur / 2, lane, dur, x.name + (f" ×{count}" if count > 1 else "")))
        overlap = _overlap(fused_sites.get(x.name), x)
        if overlap:
            ax.barh(
                0,
                dur - overlap,
                left=t + overlap,
                height=0.8,
                color=LANE_COLORS["fused: unit overlaps the next row block"],
            )
            used.add("fused: unit overlaps the next row block")
        t += dur
    ax.set_yticks([0, 1], ["norm unit / CPU", "array + DMA"], fontsize=8)
    ax.set_ylim(-1.6, 2.6)
    ax.set_xlim(0, t)
    si_axis(ax.xaxis)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel("cycles (one encoder layer)", fontsize=8)
    ax.set_title(f"fusion {policy}: {si(t)} cycles per encoder layer", fontsize=9)
    return outside, used


def _overlap(site: SiteResult | None, x: LayerResult) -> float:
    """Cycles after which a fused row-wise site's unit works alongside the array (0: none)."""
    if site is None or not site.site.row_wise or site.fused is None:
        return 0.0
    blocks = -(-site.site.producer.M // site.fused.matmul.mapping.local[0])  # type: ignore[union-attr]
    return x.cycles / max(1, blocks)


def _label_gantt(ax, segments: list, renderer) -> None:
    """Each segment's name inside it where it fits, else above (array) or below (unit) its lane."""
    taken: list = []
    for centre, lane, dur, text in segments:
        label = ax.text(centre, lane, text, ha="center", va="center", fontsize=7, color="white")
        box, bar = label.get_window_extent(renderer), ax.transData.transform([(0, 0), (dur, 0)])
        if box.width + 4 <= bar[1][0] - bar[0][0]:
            continue
        label.remove()
        side = 1 if lane else -1
        offsets = [(dx, side * dy) for dy in (4, 15, 26) for dx in (0, -12, 12, -30, 30, -50, 50)]
        place_labels(ax, [(centre, lane + side * 0.4)], [text], renderer, fontsize=7, offsets=offsets, taken=taken)


def _site_bars(ax, result: ScheduleResult) -> None:
    """Whole-model stacked bars (per instance × instances) per site, unfused then fused."""
    x, ticks, names = 0.0, [], []
    for s, fuse in zip(result.sites, result.auto_choice):
        for name, sched in (("unfused", s.unfused), ("fused", s.fused)):
            ticks.append(x)
            names.append(name + (" ✓" if (name == "fused") == fuse else ""))
            if sched is None:
                ax.text(x, 0, "infeasible", rotation=90, ha="center", va="bottom", fontsize=8)
            else:
                _stack(ax, x, sched, s.site.repeat)
            x += 1.0
        verdict = _verdict(s, fuse, result.objective)
        ax.text(x - 1.5, -0.16, f"{s.site.name} ×{s.site.repeat}\n{verdict}", transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=8)  # fmt: skip
        x += 0.6
    ax.set_xticks(ticks, names, fontsize=8)
    ax.set_xlim(-0.6, ticks[-1] + 0.6)  # an infeasible bar is text only: keep its place in view
    ax.margins(y=0.12)
    si_axis(ax.yaxis)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_ylabel("cycles, whole model\n(per instance × instances)", fontsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # beside: bars stay visible


def _stack(ax, x: float, sched, repeat: int) -> None:
    bottom = 0.0
    for part, val in (("compute", sched.compute_cycles), ("memory", sched.memory_cycles),
                      ("normalization", sched.norm_cycles)):  # fmt: skip
        label = {"memory": "memory (exposed transfers)", "normalization": "normalization (unit or CPU)"}.get(part, part)
        ax.bar(x, val * repeat, bottom=bottom, color=COLORS[part], width=0.7, label=label if x == 0 else None)
        bottom += val * repeat
    ax.text(x, bottom, f"{si(sched.cycles)}\nper inst.", ha="center", va="bottom", fontsize=7)


def _verdict(s: SiteResult, fuse: bool, objective: str) -> str:
    if s.fused is None:
        return "fusion infeasible"
    return f"{'fused' if fuse else 'unfused'} on {OBJECTIVES.get(objective, objective)}; latency {s.ratio('latency') - 1:+.1%}"  # type: ignore[operator]


def schedule_figure(result: ScheduleResult):
    """Whole-model bars per site (fused vs unfused) and the labelled Gantt of one layer under none and auto."""
    from matplotlib.patches import Patch

    fig = new_figure(12, 9.5)
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 1, 1])
    _site_bars(fig.add_subplot(grid[0]), result)
    gantts, used = [], set()
    for i, policy in enumerate(("none", "auto")):
        ax = fig.add_subplot(grid[i + 1])
        segments, colours = _gantt(ax, result, policy)
        gantts.append((ax, segments))
        used |= colours
    handles = [Patch(color=c, label=k) for k, c in LANE_COLORS.items() if k in used]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    arch = result.arch
    title = (f"{result.workload_name} on {arch.name} (acc {arch.accumulator.kib} KiB, spad {arch.scratchpad.kib} KiB): "
             f"fused vs unfused per site (✓ chosen by auto on {OBJECTIVES.get(result.objective, result.objective)})")  # fmt: skip
    fig.suptitle(wrap(title, 12, 10), fontsize=10)
    renderer = laid_out(fig)
    for ax, segments in gantts:
        _label_gantt(ax, segments, renderer)
    return fig


def plot_schedule(result: ScheduleResult, path: str | Path) -> list[Path]:
    """:func:`schedule_figure` as ``path``.png and .svg."""
    return save(schedule_figure(result), path)


Series = dict[str, dict[int, list[tuple[int, float | None]]]]


def ratio_figure(series: Series, title: str):
    """``series[site][acc_kib]`` = [(seq_len, fused/unfused latency or None if infeasible)]: a
    panel per site, a line per accumulator size, and under it a strip marking infeasible points."""
    sites = list(series)
    accs = sorted({a for s in series.values() for a in s})
    seqs = sorted({q for s in series.values() for pts in s.values() for q, _ in pts})
    infeasible = any(r is None for s in series.values() for pts in s.values() for _, r in pts)
    fig = new_figure(max(3.6 * len(sites), 6.5), 4.2 if infeasible else 3.4)
    grid = fig.add_gridspec(2 if infeasible else 1, len(sites), height_ratios=[4, 1] if infeasible else [1])
    colours = {a: f"C{i}" for i, a in enumerate(accs)}
    top = None
    for j, site in enumerate(sites):
        ax = fig.add_subplot(grid[0, j], sharey=top)
        top = top or ax
        _ratio_panel(ax, series[site], colours, seqs, site)
        if infeasible:
            ax.tick_params(labelbottom=False)
            _infeasible_strip(fig.add_subplot(grid[1, j], sharex=ax), series[site], colours, accs, seqs)
        else:
            ax.set_xlabel("sequence length", fontsize=8)
    top.set_ylabel("fused / unfused latency", fontsize=8)
    fig.legend(handles=fig.axes[0].get_legend_handles_labels()[0][: len(accs)], loc="outside lower center",
               ncol=len(accs), fontsize=8, frameon=False)  # fmt: skip
    fig.suptitle(wrap(title, fig.get_figwidth(), 10), fontsize=10)
    return fig


def _ratio_panel(ax, by_acc: dict[int, list[tuple[int, float | None]]], colours, seqs, site: str) -> None:
    for acc in sorted(colours):
        ok = [(s, r) for s, r in by_acc.get(acc, []) if r is not None]
        ax.plot([s for s, _ in ok], [r for _, r in ok], marker="o", color=colours[acc], label=f"acc {acc} KiB")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xscale("log", base=2)
    ax.set_xticks(seqs, [str(s) for s in seqs], fontsize=8)
    ax.minorticks_off()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(site, fontsize=9)


def _infeasible_strip(ax, by_acc, colours, accs: list[int], seqs: list[int]) -> None:
    """One row per accumulator size; an x where fusing this site does not fit."""
    for i, acc in enumerate(accs):
        bad = [s for s, r in by_acc.get(acc, []) if r is None]
        ax.plot(bad, [i] * len(bad), "x", color=colours[acc], markersize=7, mew=1.5)
    ax.set_yticks(range(len(accs)), [f"{a} KiB" for a in accs], fontsize=7)
    ax.set_ylim(-0.7, len(accs) - 0.3)
    ax.set_xscale("log", base=2)
    ax.set_xticks(seqs, [str(s) for s in seqs], fontsize=8)
    ax.minorticks_off()
    ax.set_title("fusion infeasible (x)", fontsize=8)
    ax.set_xlabel("sequence length", fontsize=8)


def plot_ratio(series: Series, title: str, path: str | Path) -> list[Path]:
    """:func:`ratio_figure` as ``path``.png and .svg."""
    return save(ratio_figure(series, title), path)
