"""What a sweep table says: heatmaps over scratchpad × accumulator size per fusion policy, the
area-vs-latency Pareto front, and the smallest configuration within a tolerance of the best.

Rows are the string dicts of ``sweep.csv`` (see :data:`gemmap.sweep.FIELDS`). Points that differ
in anything but the two memory sizes and the fusion policy (sequence length, dataflow, array
size, BERT hyper-parameters) go to separate panels ("variants"), as many as there are, in a grid.
Every figure says which objective its mappings were optimised for: a latency heatmap of
EDP-optimal mappings can show a larger SRAM as slower.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from gemmap.figures import laid_out, new_figure, place_labels, plain_axis, save, si, si_axis, wrap
from gemmap.report import atomic_write, csv_text
from gemmap.sweep import FIELDS, FUSION_ORDER

VARIANT_FIELDS = ("seq_len", "dataflow", "pe_dim", "layers", "hidden", "heads", "ffn", "batch")
METRICS = (("cycles", "latency", "cycles"), ("energy_pj", "energy", "pJ"), ("edp", "EDP", "pJ·cycle"))
OBJECTIVE_NAMES = {"edp": "EDP", "latency": "latency", "energy": "energy"}

Row = dict[str, str]


def ok_rows(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r["status"] == "ok"]


Variant = tuple[tuple[str, str], ...]  # (field, value) of the fields that vary in the table


def varying(rows: Sequence[Row]) -> tuple[str, ...]:
    return tuple(f for f in VARIANT_FIELDS if len({r[f] for r in rows}) > 1)


def variant(row: Row, fields: tuple[str, ...]) -> Variant:
    return tuple((f, row[f]) for f in fields)


def variant_label(v: Variant) -> str:
    names = {
        "seq_len": "S",
        "dataflow": "",
        "pe_dim": "dim ",
        "layers": "L",
        "hidden": "H",
        "heads": "A",
        "ffn": "I",
        "batch": "B",
    }
    return " ".join(f"{names[f]}{x}" for f, x in v if x)


def _sorted_variants(rows: Sequence[Row], fields: tuple[str, ...]) -> list[Variant]:
    def key(v: Variant) -> tuple[object, ...]:
        return tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for _, x in v)

    return sorted({variant(r, fields) for r in rows}, key=key)


@dataclasses.dataclass(frozen=True)
class Pick:
    """For one variant and fusion policy: the best latency and the smallest config near it."""

    variant: Variant
    fusion: str
    best: Row
    smallest: Row  # least area (then least latency) with cycles ≤ (1 + tolerance) · best


def picks(rows: Sequence[Row], tolerance: float = 0.05, by_fusion: bool = True) -> list[Pick]:
    """Per variant (and fusion policy, or across them): best latency, and the smallest
    configuration (least area, ties by latency) within ``tolerance`` of it."""
    fields = varying(rows)
    groups: dict[tuple[Variant, str], list[Row]] = {}
    for r in ok_rows(rows):
        groups.setdefault((variant(r, fields), r["fusion"] if by_fusion else "any"), []).append(r)
    out = []
    for (v, f), members in groups.items():
        best = min(members, key=lambda r: (int(r["cycles"]), float(r["area_mm2"])))
        near = [r for r in members if int(r["cycles"]) <= (1 + tolerance) * int(best["cycles"])]
        smallest = min(near, key=lambda r: (float(r["area_mm2"]), int(r["cycles"])))
        out.append(Pick(v, f, best, smallest))
    order = {v: i for i, v in enumerate(_sorted_variants(rows, fields))}
    return sorted(
        out, key=lambda p: (order[p.variant], FUSION_ORDER.index(p.fusion) if p.fusion in FUSION_ORDER else 9)
    )


def pareto_front(rows: Sequence[Row]) -> list[Row]:
    """Rows not dominated in (area, cycles): no other row is at most as large and as slow."""
    pts = sorted(ok_rows(rows), key=lambda r: (float(r["area_mm2"]), int(r["cycles"])))
    front: list[Row] = []
    for r in pts:
        if not front or int(r["cycles"]) < int(front[-1]["cycles"]):
            front.append(r)
    return front


def objective_phrase(objective: str | None) -> str:
    """'of the EDP-optimal mappings' (what every figure of a sweep is measured on), or ''."""
    return f" of the {OBJECTIVE_NAMES[objective]}-optimal mappings" if objective else ""


def no_heatmap_reason(rows: Sequence[Row]) -> str | None:
    """Why :func:`heatmaps` draws nothing for ``rows`` (None when it draws)."""
    if not ok_rows(rows):
        return "no heatmaps: no point has a valid mapping"
    if len({r["spad_kib"] for r in rows}) < 2 and len({r["acc_kib"] for r in rows}) < 2:
        return "no heatmaps: the sweep has one scratchpad and one accumulator size (give --spad-kib/--acc-kib lists)"
    return None


def no_pareto_reason(rows: Sequence[Row]) -> str | None:
    """Why :func:`pareto_plot` draws nothing for ``rows`` (None when it draws)."""
    if not ok_rows(rows):
        return "no Pareto plot: no point has a valid mapping"
    if len({r["area_mm2"] for r in ok_rows(rows)}) < 2:
        return ("no Pareto plot: every point has the same area estimate (area changes with --spad-kib, --acc-kib "
                "and --pe-dim)")  # fmt: skip
    return None


def _grid_shape(groups: int, group: int, panel_w: float, panel_h: float) -> tuple[int, int]:
    """(rows, columns) for ``groups`` groups of ``group`` panels kept side by side, near 4:3."""
    k = round(math.sqrt(groups * panel_h * 4 / (3 * group * panel_w)))
    k = max(1, min(k, groups, max(1, 12 // group)))
    return math.ceil(groups / k), k * group


def _panel_axes(fig, nrows: int, ncols: int, count: int) -> list:
    """``count`` axes in a ``nrows`` × ``ncols`` grid, row by row (the unused cells stay empty)."""
    grid = fig.add_gridspec(nrows, ncols)
    return [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(count)]


def heatmap_figure(rows: Sequence[Row], metric: tuple[str, str, str], objective: str | None = None):
    """Scratchpad × accumulator panels, one per variant and fusion policy, each coloured by how
    far a cell lies above the panel's best (its own colour bar) and labelled with its value."""
    field, title, unit = metric
    good = ok_rows(rows)
    spads = sorted({int(r["spad_kib"]) for r in rows})
    accs = sorted({int(r["acc_kib"]) for r in rows})
    fusions = [f for f in FUSION_ORDER if any(r["fusion"] == f for r in rows)]
    fields = varying(rows)
    variants = _sorted_variants(rows, fields)
    cells = {(variant(r, fields), r["fusion"], int(r["spad_kib"]), int(r["acc_kib"])): float(r[field]) for r in good}
    pw, ph = 0.7 * len(spads) + 1.9, 0.42 * len(accs) + 1.3
    nrows, ncols = _grid_shape(len(variants), len(fusions), pw, ph)
    fig = new_figure(max(pw * ncols, 7.0), ph * nrows + 0.9)
    axes = iter(_panel_axes(fig, nrows, ncols, len(variants) * len(fusions)))
    for v in variants:
        for f in fusions:
            grid = [[cells.get((v, f, s, a), math.nan) for s in spads] for a in accs]
            name = f"fusion {f}" + (f" · {variant_label(v)}" if variant_label(v) else "")
            _heat_panel(next(axes), grid, spads, accs, name)
    head = f"{title} ({unit}){objective_phrase(objective)} over scratchpad × accumulator size"
    legend = "cells: value (* best of the panel, × no valid mapping); colour: % above the panel's best"
    fig.suptitle(wrap(f"{head}\n{legend}", fig.get_figwidth(), 10), fontsize=10)
    return fig


def _heat_panel(ax, grid: list[list[float]], spads: list[int], accs: list[int], title: str) -> None:
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    values = np.array(grid, dtype=float)
    best = np.nanmin(values) if np.isfinite(values).any() else math.nan
    above = (values / best - 1) * 100
    span = max(float(np.nanmax(above)) if np.isfinite(above).any() else 0.0, 1.0)  # < 1 %: keep noise pale
    cmap = colormaps["YlOrRd"].with_extremes(bad="0.85")
    im = ax.imshow(above, origin="lower", cmap=cmap, vmin=0, vmax=span, aspect="auto")
    for a, row in enumerate(values):
        for s, x in enumerate(row):
            text = "×" if math.isnan(x) else si(x) + ("*" if x == best else "")
            dark = not math.isnan(x) and above[a, s] > 0.6 * span
            ax.text(s, a, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(spads)), [str(x) for x in spads], fontsize=8)
    ax.set_yticks(range(len(accs)), [str(x) for x in accs], fontsize=8)
    ax.set_xlabel("scratchpad (KiB)", fontsize=8)
    ax.set_ylabel("accumulator (KiB)", fontsize=8)
    ax.set_title(title, fontsize=9)
    bar = ax.figure.colorbar(im, ax=ax, pad=0.02, fraction=0.08)
    bar.ax.yaxis.set_major_locator(MaxNLocator(4))
    bar.ax.yaxis.set_major_formatter(lambda x, _: f"+{x:.2g}%")
    bar.ax.tick_params(labelsize=7)


def heatmaps(rows: Sequence[Row], out_dir: Path, objective: str | None = None) -> list[Path]:
    """``heatmap_{latency,energy,edp}.{png,svg}`` (nothing when :func:`no_heatmap_reason` says why)."""
    if no_heatmap_reason(rows):
        return []
    paths: list[Path] = []
    for metric in METRICS:
        paths += save(heatmap_figure(rows, metric, objective), out_dir / f"heatmap_{metric[1].lower()}")
    return paths


FUSION_STYLE = {"none": ("tab:blue", "o"), "all": ("tab:orange", "s"), "auto": ("tab:green", "^")}


def pareto_figure(rows: Sequence[Row], objective: str | None = None):
    """Area vs latency, one panel per variant; the Pareto front drawn and its points labelled."""
    good = ok_rows(rows)
    fields = varying(good)
    variants = _sorted_variants(good, fields)
    several = len({r["fusion"] for r in good}) > 1
    nrows, ncols = _grid_shape(len(variants), 1, 5.2, 3.8)
    fig = new_figure(max(5.2 * ncols, 6.5), 3.8 * nrows + 0.9)
    fronts = []
    for ax, v in zip(_panel_axes(fig, nrows, ncols, len(variants)), variants):
        mine = [r for r in good if variant(r, fields) == v]
        fronts.append((ax, _pareto_panel(ax, mine, variant_label(v))))
    entries = {label: h for ax in fig.axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=len(entries), fontsize=8,
               frameon=False)  # fmt: skip
    text = f"area vs latency{objective_phrase(objective)}; Pareto front labelled spad/acc KiB" + (
        " and fusion" if several else ""
    )
    fig.suptitle(wrap(text, fig.get_figwidth(), 10), fontsize=10)
    renderer = laid_out(fig)
    for (ax, front), v in zip(fronts, variants):
        points = [(float(r["area_mm2"]), int(r["cycles"])) for r in front]
        texts = [f"{r['spad_kib']}/{r['acc_kib']}" + (f" {r['fusion']}" if several else "") for r in front]
        others = [(float(r["area_mm2"]), int(r["cycles"])) for r in good if variant(r, fields) == v]
        place_labels(ax, points, texts, renderer, avoid=others)
    return fig


def _pareto_panel(ax, rows: list[Row], title: str) -> list[Row]:
    for f in FUSION_ORDER:
        pts = [r for r in rows if r["fusion"] == f]
        if pts:
            colour, marker = FUSION_STYLE[f]
            ax.scatter([float(r["area_mm2"]) for r in pts], [int(r["cycles"]) for r in pts], s=18, alpha=0.6,
                       color=colour, marker=marker, label=f"fusion {f}")  # fmt: skip
    front = pareto_front(rows)
    ax.step([float(r["area_mm2"]) for r in front], [int(r["cycles"]) for r in front], where="post", color="black",
            lw=1, label="Pareto front")  # fmt: skip
    ax.margins(0.12)
    plain_axis(ax.xaxis)
    si_axis(ax.yaxis)
    ax.set_xlabel("area estimate (mm²)", fontsize=8)
    ax.set_ylabel("latency (cycles)", fontsize=8)
    ax.tick_params(labelsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return front


def pareto_plot(rows: Sequence[Row], out_dir: Path, objective: str | None = None) -> list[Path]:
    """``pareto.{png,svg}`` and ``pareto.csv`` (nothing when :func:`no_pareto_reason` says why)."""
    if no_pareto_reason(rows):
        return []
    good = ok_rows(rows)
    fields = varying(good)
    front_rows = [
        r for v in _sorted_variants(good, fields) for r in pareto_front([x for x in good if variant(x, fields) == v])
    ]
    paths = save(pareto_figure(rows, objective), out_dir / "pareto")
    atomic_write(out_dir / "pareto.csv", csv_text(front_rows, FIELDS))
    return paths + [out_dir / "pareto.csv"]
