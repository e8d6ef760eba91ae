"""Helpers every plot shares: SI tick labels (never an offset such as "1e9" or "+1.503e7"),
greedy placement of point labels that do not overlap, and atomic PNG + SVG output (both or
neither written; byte-identical between runs: no date, a fixed ``svg.hashsalt``).

Figures are :class:`matplotlib.figure.Figure` objects with constrained layout (no pyplot state),
so labels, titles and colour bars stay inside the figure; tests check every text's extent.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from gemmap.report import atomic_write_all

DPI = 120


def si(x: float) -> str:
    """4 significant digits with an SI suffix: 1671000 → '1.671M' (neighbours often differ in the 4th)."""
    for scale, suffix in (
        (1e24, "Y"),
        (1e21, "Z"),
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:.4g}"


def new_figure(width: float, height: float):
    """A figure (inches) whose layout keeps every label, title and colour bar inside it."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.splitlines())


def si_axis(axis) -> None:
    """Tick labels of ``axis`` (ax.xaxis / ax.yaxis) in SI notation, with no offset text."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda x, _: si(x)))


def plain_axis(axis) -> None:
    """Plain numbers on ``axis``: no offset and no scientific multiplier."""
    from matplotlib.ticker import ScalarFormatter

    f = ScalarFormatter(useOffset=False)
    f.set_scientific(False)
    axis.set_major_formatter(f)


def _agg(fig) -> None:
    """Give ``fig`` an Agg canvas (a Figure made without pyplot has none that can render)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)


def save(fig, base: str | Path, tight: bool = False) -> list[Path]:
    """Write ``base.png`` and ``base.svg`` (a .png/.svg suffix of ``base`` is replaced) atomically;
    ``tight`` crops to the drawn content (for figures not made by :func:`new_figure`)."""
    from matplotlib import rc_context

    base = Path(base)
    base = base.with_suffix("") if base.suffix.lower() in (".png", ".svg") else base
    laid_out(fig)
    fig.set_layout_engine("none")  # laid out once above, not again for each format
    rendered = []
    for ext in ("png", "svg"):  # both rendered before either is written
        buf = io.BytesIO()
        with rc_context({"svg.fonttype": "none", "svg.hashsalt": "gemmap"}):  # text stays text; stable ids
            fig.savefig(buf, format=ext, dpi=DPI, metadata={"Date": None} if ext == "svg" else None,
                        bbox_inches="tight" if tight else None)  # fmt: skip
        rendered.append((base.with_name(f"{base.name}.{ext}"), buf.getvalue()))
    return atomic_write_all(rendered)


#: candidate offsets (points) of a label from its point, nearest first
_OFFSETS = [(dx * r, dy * r) for r in (5, 12, 22, 34) for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))]  # fmt: skip


def laid_out(fig):
    """Lay ``fig`` out as it will be saved and return its renderer (for text extents)."""
    _agg(fig)
    fig.canvas.draw()
    return fig.canvas.get_renderer()


#: text alignment (horizontal, vertical) for an offset's sign (-1, 0, 1): away from the point
_ALIGN = {-1: ("right", "top"), 0: ("center", "center"), 1: ("left", "bottom")}


def place_labels(
    ax,
    points: Sequence[tuple[float, float]],
    texts: Sequence[str],
    renderer,
    avoid: Sequence[tuple[float, float]] = (),
    fontsize: float = 7,
    offsets: Sequence[tuple[float, float]] = (),
    taken: list | None = None,
) -> list:
    """Annotate ``points`` of ``ax`` with ``texts``, each at the nearest offset where its box
    overlaps no label placed before, none of ``points`` and ``avoid`` (other markers) and stays
    inside the axes, trying ``offsets`` (points; default: around the point, nearest first). A
    label with no free place is left out (the returned list is shorter). ``taken`` (window boxes
    already occupied) is extended with the placed labels, to share between calls.
    ``renderer`` is :func:`laid_out`'s, taken once the figure is complete; the labels do not
    take part in the layout."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent(renderer)
    marks = [ax.transData.transform(p) for p in [*points, *avoid]]
    taken = taken if taken is not None else []
    taken += [Bbox.from_extents(x - 3, y - 3, x + 3, y + 3) for x, y in marks]
    placed = []
    for xy, text in zip(points, texts):
        for dx, dy in offsets or _OFFSETS:
            a = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                            ha=_ALIGN[(dx > 0) - (dx < 0)][0], va=_ALIGN[(dy > 0) - (dy < 0)][1],
                            arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.4"} if max(abs(dx), abs(dy)) > 5 else None)  # fmt: skip
            a.set_in_layout(False)
            a.update_positions(renderer)
            box = Text.get_window_extent(a, renderer).padded(2)  # the text alone, not its leader line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(t) for t in taken):
                taken.append(box)
                placed.append(a)
                break
            a.remove()
    return placed
