"""A brute-force reference for the traffic model: run the loop nest iteration by iteration, with
the actual trip counts of partial tiles, and add up the tile volumes each load statement moves.

As generated code does, a tensor's load sits just inside the innermost loop (of nominal bound > 1)
that indexes it, so it runs whenever that loop or any loop outside it advances — even where a
partial tile leaves an inner loop with one trip. It shares no code with gemmap.model.
"""

from __future__ import annotations

import itertools

from gemmap.mapping import DIMS, Mapping

RELEVANT = {"A": ("M", "K"), "B": ("K", "N"), "C": ("M", "N")}


def _tiles(size: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(tile, size - s)) for s in range(0, size, tile)]


def _load_depth(nominal: list[tuple[str, int]], rel: tuple[str, str]) -> int:
    """Position of the innermost loop (nominal bound > 1) indexing the tensor, -1 if none."""
    return max((p for p, (d, b) in enumerate(nominal) if d in rel and b > 1), default=-1)


def walk(dims: dict[str, int], m: Mapping, has_l2: bool, reload: bool = False) -> dict[tuple[str, str], int]:
    """Elements brought into each level per tensor: {(tensor, 'local'|'l2'): elements}. With
    ``reload`` the local loads of A and B sit inside the innermost loop of all (one per tile call)."""
    local = dict(zip(DIMS, m.local))
    l2 = {d: min(f * local[d], dims[d]) for d, f in zip(DIMS, m.l2_factors)} if has_l2 else dict(local)
    outer = {d: _tiles(dims[d], l2[d]) for d in DIMS}  # DRAM loop: over L2 tiles (or local tiles)
    n_local = {d: len(_tiles(dims[d], local[d])) for d in DIMS}
    nominal = [(d, len(outer[d])) for d in m.dram_order]
    if has_l2:
        f = {d: min(fi, n_local[d]) for d, fi in zip(DIMS, m.l2_factors)}
        nominal += [(d, f[d]) for d in m.l2_order]
    depth = {
        (t, lvl): _load_depth(nominal if lvl == "local" else nominal[:3], DIMS if reload_here else rel)
        for t, rel in RELEVANT.items()
        for lvl in ("local", "l2")
        for reload_here in [reload and lvl == "local" and t != "C"]
    }
    last: dict[tuple[str, str], tuple | None] = dict.fromkeys(depth)
    moved = dict.fromkeys(depth, 0)
    order_outer = list(m.dram_order)
    for outer_idx in itertools.product(*[range(len(outer[d])) for d in order_outer]):
        o = dict(zip(order_outer, outer_idx))
        span = {d: outer[d][o[d]] for d in DIMS}  # (start, extent) of the L2 tile
        if has_l2:
            inner = {d: [(span[d][0] + s, e) for s, e in _tiles(span[d][1], local[d])] for d in DIMS}
            order_inner = list(m.l2_order)
        else:
            inner = {d: [span[d]] for d in DIMS}
            order_inner = []
        for inner_idx in itertools.product(*[range(len(inner[d])) for d in order_inner]):
            i = dict(zip(order_inner, inner_idx))
            position = tuple(outer_idx) + tuple(inner_idx)
            tile = {d: inner[d][i.get(d, 0)] for d in DIMS}
            for (t, lvl), r in depth.items():
                prefix = position[: r + 1]
                if last[(t, lvl)] != prefix or last[(t, lvl)] is None:
                    last[(t, lvl)] = prefix
                    box = span if lvl == "l2" else tile
                    a, b = RELEVANT[t]
                    moved[(t, lvl)] += box[a][1] * box[b][1]
    if not has_l2:
        for t in RELEVANT:
            del moved[(t, "l2")]
    return moved
