"""What a sweep table says: heatmaps over scratchpad × accumulator size per fusion policy, the
area-vs-latency Pareto front, and the smallest configuration within a tolerance of the best.

Rows are the string dicts of ``sweep.csv`` (see :data:`gemmap.sweep.FIELDS`). Points that differ
in anything but the two memory sizes and the fusion policy (sequence length, dataflow, array
size, BERT hyper-parameters) go to separate panels ("variants"), at most :data:`MAX_PANELS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

from gemmap.report import atomic_write, csv_text
from gemmap.sweep import FIELDS, FUSION_ORDER

VARIANT_FIELDS = ("seq_len", "dataflow", "pe_dim", "layers", "hidden", "heads", "ffn", "batch")
METRICS = (("cycles", "latency", "cycles"), ("energy_pj", "energy", "pJ"), ("edp", "EDP", "pJ·cycle"))
MAX_PANELS = 4

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


def _figure(nrows: int, ncols: int, w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w * ncols + 1.2, h * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.86, bottom=0.12, top=0.86, wspace=0.35, hspace=0.5)
    return fig, axes


def _save(fig, base: Path) -> list[Path]:
    from matplotlib import rc_context

    paths = []
    for ext in ("png", "svg"):
        p = base.with_suffix(f".{ext}")
        tmp = p.with_name(f".{p.name}.tmp")
        with rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, faster, searchable
            fig.savefig(tmp, format=ext, dpi=120, metadata={"Date": None} if ext == "svg" else None)
        tmp.replace(p)
        paths.append(p)
    return paths


def heatmaps(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    """``heatmap_{latency,energy,edp}.{png,svg}``: spad × acc per fusion policy (and variant)."""
    good = ok_rows(rows)
    spads = sorted({int(r["spad_kib"]) for r in rows})
    accs = sorted({int(r["acc_kib"]) for r in rows})
    if not good or (len(spads) < 2 and len(accs) < 2):
        return []
    import numpy as np

    fusions = [f for f in FUSION_ORDER if any(r["fusion"] == f for r in rows)]
    fields = varying(rows)
    variants = _sorted_variants(rows, fields)[:MAX_PANELS]
    paths: list[Path] = []
    for field, title, unit in METRICS:
        fig, axes = _figure(len(variants), len(fusions), 0.62 * len(spads) + 1.6, 0.42 * len(accs) + 1.4)
        cells = {
            (variant(r, fields), r["fusion"], int(r["spad_kib"]), int(r["acc_kib"])): float(r[field]) for r in good
        }
        values = [v for k, v in cells.items() if k[0] in variants]
        lo, hi = min(values), max(values)
        for i, v in enumerate(variants):
            for j, f in enumerate(fusions):
                ax = axes[i][j]
                grid = np.full((len(accs), len(spads)), np.nan)
                for a, acc in enumerate(accs):
                    for s, spad in enumerate(spads):
                        grid[a, s] = cells.get((v, f, spad, acc), np.nan)
                im = ax.imshow(grid, origin="lower", cmap="viridis_r", aspect="auto",
                               norm=_norm(lo, hi))  # fmt: skip
                best = np.nanmin(grid) if np.isfinite(grid).any() else None
                for a in range(len(accs)):
                    for s in range(len(spads)):
                        x = grid[a, s]
                        text = "×" if math.isnan(x) else _cell(x)
                        mark = "*" if best is not None and x == best else ""
                        ax.text(s, a, text + mark, ha="center", va="center", fontsize=6,
                                color="white" if not math.isnan(x) and x > math.sqrt(lo * hi) else "black")  # fmt: skip
                ax.set_xticks(range(len(spads)), [str(x) for x in spads])
                ax.set_yticks(range(len(accs)), [str(x) for x in accs])
                ax.set_xlabel("scratchpad (KiB)")
                ax.set_ylabel("accumulator (KiB)")
                ax.set_title(f"fusion {f}" + (f" · {variant_label(v)}" if variant_label(v) else ""), fontsize=9)
        fig.colorbar(im, cax=fig.add_axes((0.89, 0.15, 0.015, 0.68)), label=f"{title} ({unit})")
        fig.suptitle(f"{title} over scratchpad × accumulator size (* best, × no valid mapping)", fontsize=10)
        paths += _save(fig, out_dir / f"heatmap_{title.lower()}")
    return paths


def _cell(x: float) -> str:
    """4 significant digits with an SI suffix (neighbouring cells often differ in the 4th)."""
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:.4g}"


def _norm(lo: float, hi: float):
    from matplotlib.colors import LogNorm, Normalize

    return LogNorm(lo, hi) if lo > 0 and hi / lo > 10 else Normalize(lo, hi)


def pareto_plot(rows: Sequence[Row], out_dir: Path) -> list[Path]:
    """``pareto.{png,svg}`` (area vs latency, the front labelled) and ``pareto.csv``."""
    good = ok_rows(rows)
    if not good or len({r["area_mm2"] for r in good}) < 2:
        return []
    fields = varying(good)
    variants = _sorted_variants(good, fields)[:MAX_PANELS]
    fig, axes = _figure(1, len(variants), 6.5, 4.8)
    colors = {"none": "tab:blue", "all": "tab:orange", "auto": "tab:green"}
    markers = {"none": "o", "all": "s", "auto": "^"}
    front_rows: list[Row] = []
    for ax, v in zip(axes[0], variants):
        mine = [r for r in good if variant(r, fields) == v]
        for f in FUSION_ORDER:
            pts = [r for r in mine if r["fusion"] == f]
            if pts:
                ax.scatter([float(r["area_mm2"]) for r in pts], [int(r["cycles"]) for r in pts], s=18, alpha=0.6,
                           color=colors[f], marker=markers[f], label=f"fusion {f}")  # fmt: skip
        front = pareto_front(mine)
        front_rows += front
        ax.step([float(r["area_mm2"]) for r in front], [int(r["cycles"]) for r in front], where="post",
                color="black", lw=1, label="Pareto front")  # fmt: skip
        for r in front:
            ax.annotate(f"{r['spad_kib']}/{r['acc_kib']} {r['fusion']}", (float(r["area_mm2"]), int(r["cycles"])),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)  # fmt: skip
        ax.set_xlabel("area estimate (mm²)")
        ax.set_ylabel("latency (cycles)")
        ax.set_title(
            "area vs latency (labels: spad/acc KiB, fusion)" + (f"\n{variant_label(v)}" if variant_label(v) else ""),
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    paths = _save(fig, out_dir / "pareto")
    atomic_write(out_dir / "pareto.csv", csv_text(front_rows, FIELDS))
    return paths + [out_dir / "pareto.csv"]
