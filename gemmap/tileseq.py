"""Two loops in flight over the real sequence of tiles (docs/model.md, "Tile sequence").

Gemmini's loop unrollers (LoopMatmul, LoopConv) hold two loops, one tile each, on the two halves of
the scratchpad and accumulator: a tile's loads start once the previous tile's loads are issued and
the tile two back has left its half (stored, and acknowledged a fixed latency later); its execute
starts after its own loads and the previous execute; its stores after its execute and the previous
stores (gemmini-dosa @67ca2f9 ``LoopConv.scala`` L713-720, L1249-1261, L1496; ``LoopMatmul.scala``
L447-449, L1104-1107). For tile ``i`` with load, execute and store times ``L, E, S`` and latency
``λ``, over the state (last load end ``ld``, execute end ``ex``, store end ``st``, and the slot
times ``a``, ``b`` of the tiles two and one back)::

    ld' = L + max(ld, a)      ex' = E + max(ld', ex)      st' = S + max(ex', st)
    a'  = b                   b'  = st' + λ

Each step is linear in the max-plus semiring, so it is a 5×5 matrix, and the run is the product of
its tiles' matrices applied to the zero state; its time is the last store's end.

The tiles of a loop nest are not all alike (the last tile of a dim is a remainder; the first visit
of an operand comes from memory), but along one loop the middle iterations repeat the same inner
sequence. Each loop of the nest is therefore three bodies, ``first``, ``middle`` (repeated
``n − 2`` times: a matrix power by squaring) and ``last``; a body is the product of the loop inside
under that context, down to the tiles, whose times depend only on the ``first`` / ``last`` flags of
every dim (:data:`TileFn`). A nest with ``m`` non-trivial loops costs ``3^m`` tile evaluations and
``O(3^m · log n)`` products, vectorised over mappings with as many loops; the brute
force walk (:func:`walk_cycles`) is the reference it must equal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

#: ``(first, last, which) -> (load, execute, store)``: times of tiles of the mappings ``which``
#: (indices into the group, (t,)) from each dim's ``first`` / ``last`` flags (bool (t, d): the tile
#: is the first / last along that dim)
TileFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

_NEG = -np.inf
_LD, _EX, _ST, _A, _B = range(5)


def step_matrices(load, execute, store, latency: float) -> np.ndarray:
    """The max-plus matrices (g, 5, 5) of tiles with times ``load``, ``execute``, ``store`` (g,)."""
    L, E, S = (np.asarray(x, dtype=np.float64) for x in (load, execute, store))
    m = np.full((len(L), 5, 5), _NEG)
    m[:, _LD, _LD] = m[:, _LD, _A] = L
    m[:, _EX, _LD] = m[:, _EX, _A] = L + E
    m[:, _EX, _EX] = E
    m[:, _ST, _LD] = m[:, _ST, _A] = L + E + S
    m[:, _ST, _EX] = E + S
    m[:, _ST, _ST] = S
    m[:, _A, _B] = 0.0
    m[:, _B] = m[:, _ST] + latency
    return m


def mp_mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Max-plus products ``x ⊗ y`` of stacks of square matrices (apply ``y`` first, then ``x``)."""
    out = x[:, :, 0, None] + y[:, None, 0, :]
    for k in range(1, x.shape[2]):
        np.maximum(out, x[:, :, k, None] + y[:, None, k, :], out=out)
    return out


def _identity(g: int) -> np.ndarray:
    out = np.full((g, 5, 5), _NEG)
    out[:, np.arange(5), np.arange(5)] = 0.0
    return out


def mp_pow(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``x^e`` per matrix (``e`` (g,) non-negative integers; ``x^0`` is the identity), by squaring,
    each step on the matrices whose exponent still has bits left."""
    e = np.asarray(e, dtype=np.int64).copy()
    out = _identity(len(x))
    live = np.flatnonzero(e > 0)
    base = x[live]
    while len(live):
        bits = e[live]
        odd = np.flatnonzero(bits & 1)
        if len(odd):
            out[live[odd]] = mp_mul(base[odd], out[live[odd]])
        e[live] >>= 1
        keep = np.flatnonzero(e[live] > 0)
        live, base = live[keep], base[keep]
        if len(live):
            base = mp_mul(base, base)
    return out


#: contexts × mappings evaluated at once (bounds the memory of one pass: 25 floats each)
_CHUNK_ROWS = 1 << 15


def loops_of(n: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`nest_cycles` loops and counts of nests with tile counts ``n`` (g, d) that walk the
    dims ``perm`` (g, m), outermost first, one dim a loop."""
    g, m = perm.shape
    rows = np.arange(g)[:, None]
    loops = np.zeros((g, m, n.shape[1]), dtype=bool)
    loops[rows, np.arange(m)[None, :], perm] = True
    return loops, n[rows, perm]


def nest_cycles(loops: np.ndarray, counts: np.ndarray, tile: TileFn, latency: float) -> np.ndarray:
    """Time (g,) of loop nests of ``m`` loops, outermost first: loop ``j`` of mapping ``i`` walks the dims
    ``loops[i, j]`` (bool (g, m, d); one dim, or several moving together: their first iteration is
    every one's first, their last every one's last, the others none's) ``counts[i, j] ≥ 2`` times;
    every dim in no loop has one tile (first and last).

    Every context (per loop: first, middle, last iteration) is costed in one call of ``tile``, then
    the loops are folded from the innermost out: ``last ⊗ middle^(n − 2) ⊗ first``."""
    g, m, d = loops.shape
    if (counts < 2).any():
        raise ValueError("every loop must have at least two iterations")
    kinds = [(0, 1, 2) if (counts[:, j] > 2).any() else (0, 2) for j in range(m)]
    every = list(itertools.product(*kinds))
    contexts = np.array(every, dtype=np.int64).reshape(len(every), m)  # (C, m)
    step = max(1, _CHUNK_ROWS // len(contexts))
    out = np.empty(g)
    for lo in range(0, g, step):
        sel = np.arange(lo, min(lo + step, g))
        out[sel] = _fold(loops[sel], counts[sel], kinds, contexts, tile, latency, sel)
    return out


def _fold(loops, counts, kinds, contexts, tile: TileFn, latency: float, which: np.ndarray) -> np.ndarray:
    g, m, d = loops.shape
    c = len(contexts)
    first = np.ones((c, g, d), dtype=bool)
    last = np.ones((c, g, d), dtype=bool)
    for j in range(m):
        k = contexts[:, j][:, None, None]  # (C, 1, 1)
        on = loops[None, :, j, :]  # (1, g, d)
        first = np.where(on, k == 0, first)
        last = np.where(on, k == 2, last)
    mats = step_matrices(*tile(first.reshape(-1, d), last.reshape(-1, d), np.tile(which, c)), latency)
    x = mats.reshape(*(len(k) for k in kinds), g, 5, 5)
    for j in range(m - 1, -1, -1):
        lead = x.shape[:j]
        span = int(np.prod(lead, dtype=np.int64))
        y = x.reshape(span, len(kinds[j]), g, 5, 5)
        head, tail = y[:, 0].reshape(-1, 5, 5), y[:, -1].reshape(-1, 5, 5)
        if len(kinds[j]) == 3:
            e = np.tile(np.maximum(counts[:, j] - 2, 0), span)
            head = mp_mul(mp_pow(y[:, 1].reshape(-1, 5, 5), e), head)
        x = mp_mul(tail, head).reshape(*lead, g, 5, 5)
    return np.max(x[:, _ST, :], axis=1)  # from the zero state: the last store's end


def walk_cycles(loads, executes, stores, latency: float) -> float:
    """The same recurrence tile by tile over explicit sequences (the reference :func:`nest_cycles`
    must equal)."""
    ld = ex = st = a = b = 0.0
    for L, E, S in zip(loads, executes, stores):
        ld = L + max(ld, a)
        ex = E + max(ld, ex)
        st = S + max(ex, st)
        a, b = b, st + latency
    return st
