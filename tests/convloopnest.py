"""A brute-force reference for the conv model: run tiled_conv's loop nest iteration by iteration.

Each iteration is one ``sp_tiled_conv`` call on a tile with its real (partial) extents. As in
generated code, a tensor's load sits just inside the innermost loop (of nominal bound > 1) that
indexes it, so it runs whenever that loop or any loop outside it advances. A load moves:

* input: every image row/column of Gemmini's window that lies inside the image, enumerated one
  by one (window from ``p0·σ + r0·δ − pad``, ``p_e·σ + (r_e − 1)·δ`` long — gemmini.h tiled_conv
  ``irows_``; every other row from ``2·p0`` when downsampling) × batches × channels;
* weights ``k_e·c_e·r_e·s_e``; outputs ``b_e·k_e·p_e·q_e`` (a re-visit is a partial-sum spill).

With ``reload`` (Gemmini's software: ``arch.software.reload_operands``) every call mvins its input
and weight tiles, except that a tensor cut into at most 2 tiles is moved once (gemmini.h
``a_reuse``/``b_reuse``: the tiles stay in the two scratchpad halves).

Per tile it also counts the DIM×DIM weight blocks LoopConvExecute preloads by walking its
``och / krow / kcol (step max_pixels_per_row) / kch`` loops, and the MACs. It shares no code with
gemmap.conv or gemmap.convmodel (it reads only the shape's and the mapping's plain fields).
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction

NAMES = ("b", "p", "q", "k", "r", "s", "c")
INDEXES = {"A": "bpqrsc", "B": "krsc", "C": "bpqk"}


def _tiles(size: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(tile, size - s)) for s in range(0, size, tile)]


def _image_lines(first: int, extent: int, step_o: int, kern_first: int, kern_extent: int, shape, size: int, ds: bool):
    """The image rows (or columns) one input load brings in."""
    if ds:
        return [2 * (first + i) for i in range(extent)]
    start = first * step_o + kern_first * shape.dilation - shape.padding
    length = extent * step_o + (kern_extent - 1) * shape.dilation
    return [y for y in range(start, start + length) if 0 <= y < size]


@functools.cache
def block_period(requests: tuple[int, ...], latency: int, window: int) -> Fraction:
    """Cycles per block of the request sequence ``requests`` repeated forever through the mesh's tag
    queue, by brute force: request k + window starts no earlier than request k's rows plus the latency,
    and each request after the one before it, s(k+1) = max(s(k) + r_k, s(k+1−W) + r_{k+1−W} + latency),
    simulated over many repeats and averaged over the last lcm(1..window) of them."""
    span = math.lcm(*range(1, window + 1))
    r = list(requests) * (span + 200)
    s = [0] * (len(r) + 1)
    for k, rk in enumerate(r):
        j = k + 1 - window
        s[k + 1] = max(s[k] + rk, s[j] + r[j] + latency) if j >= 0 else s[k] + rk
    return Fraction(s[-1] - s[-1 - span * len(requests)], span)


def walk(
    shape,
    mapping,
    dim: int,
    in_rows: int,
    in_cols: int,
    reload: bool = False,
    window: int = 5,
    latency: int | None = None,
    first_layer: bool = True,
) -> dict[str, int]:
    """Elements moved per tensor ('A' input, 'B' weights, 'C' output), 'macs' and 'blocks'
    (weight blocks preloaded), and per-tile stream rows summed as 'tiles'/'stream_sum' helpers.

    ``in_rows``/``in_cols`` are the image size (H, W); ``dim`` the array's DIM. 'tile_cycles_exact'
    walks LoopConvExecute's compute requests one by one: per weight block, per (batch, output row), the
    output columns in requests of at most DIM rows; a request feeds max(rows, 4) rows, the block's
    first one DIM rows (it carries the new weights). The block's time is its steady-state period
    through the mesh's tag queue (``window`` requests overlap the array's latency), measured by
    simulating the queue's recurrence over many repeats of the block (:func:`block_period`).
    """
    lat = 2 * dim if latency is None else latency

    sizes = dict(zip(NAMES, (shape.n, shape.p, shape.q, shape.k, shape.r, shape.s, shape.c)))
    tile = dict(zip(NAMES, mapping.tile))
    ds = shape.stride == 2 and shape.r == 1 and shape.s == 1 and shape.padding == 0
    ds = ds and in_rows % 2 == 0 and in_cols % 2 == 0
    spans = {d: _tiles(sizes[d], tile[d]) for d in NAMES}
    order = list(mapping.order)
    nominal = [len(spans[d]) for d in order]
    depth = {
        x: max((i for i, d in enumerate(order) if d in idx and nominal[i] > 1), default=-1)
        for x, idx in INDEXES.items()
    }
    own = {x: len(list(itertools.product(*[spans[d] for d in idx]))) for x, idx in INDEXES.items()}
    seen: dict[str, set] = {x: set() for x in INDEXES}
    last: dict[str, tuple | None] = dict.fromkeys(INDEXES)
    out = {"A": 0, "B": 0, "C": 0, "macs": 0, "blocks": 0, "tiles": 0, "tile_cycles": 0, "tile_cycles_serial": 0}
    for idx in itertools.product(*[range(len(spans[d])) for d in order]):
        at = {d: spans[d][i] for d, i in zip(order, idx)}
        e = {d: at[d][1] for d in NAMES}
        for x, r in depth.items():
            if reload and x != "C":
                key = tuple(at[d] for d in INDEXES[x])
                load = key not in seen[x] if own[x] <= 2 else True
                seen[x].add(key)
            else:
                prefix = idx[: r + 1]
                load = last[x] is None or last[x] != prefix
                last[x] = prefix
            if load:
                if x == "A":
                    rows = _image_lines(at["p"][0], e["p"], shape.stride, at["r"][0], e["r"], shape, in_rows, ds)
                    cols = _image_lines(at["q"][0], e["q"], shape.stride, at["s"][0], e["s"], shape, in_cols, ds)
                    out["A"] += e["b"] * e["c"] * len(rows) * len(cols)
                elif x == "B":
                    out["B"] += e["k"] * e["c"] * e["r"] * e["s"]
                else:
                    out["C"] += e["b"] * e["k"] * e["p"] * e["q"]
        out["macs"] += e["b"] * e["p"] * e["q"] * e["k"] * e["r"] * e["s"] * e["c"]
        # LoopConvExecute's weight-block loops for this tile (max_pixels_per_row: gemmini.h:1406-1411)
        ppr = 1 if (e["c"] > dim or shape.dilation > 1 or ds or not first_layer) else max(1, min(dim // e["c"], e["s"]))
        blocks = 0
        for _och in range(0, e["k"], dim):
            for _krow in range(e["r"]):
                for _kcol in range(0, e["s"], ppr):
                    for _kch in range(0, e["c"], dim):
                        blocks += 1
        stream = e["b"] * e["p"] * e["q"]
        out["blocks"] += blocks
        out["tiles"] += 1
        edge = 3 * dim - 2  # 2R + C − 2 for a square array
        out["tile_cycles"] += edge + blocks * max(stream, dim)
        out["tile_cycles_serial"] += blocks * (edge + stream)
        requests = []
        for _b in range(e["b"]):
            for _orow in range(e["p"]):
                for ocol in range(0, e["q"], dim):
                    requests.append(dim if not requests else max(min(dim, e["q"] - ocol), 4))
        period = block_period(tuple(requests), lat, window)
        out["tile_cycles_exact"] = out.get("tile_cycles_exact", 0) + edge + blocks * period
    return out
