"""What the L2 holds when a run starts (``l2.warm_start``; docs/model.md, "Warm start").

A run that follows a run of the same layer on the same buffers finds in the L2 the lines that run
left there: ``gemmap validate``'s mapped runs follow Gemmini's tiler run of the same layer on DOSA's
static buffers (gemmini-rocc-tests @959b23f7 ``gemmini-data-collection/templates/conv_tilings.c``
L136-203, ``matmul_tilings.c`` L103-150). With ``l2.warm_start`` each tensor's first fills hit those
lines, so its memory bytes drop by the share of its compulsory bytes the L2 kept; reloads beyond the
first are costed as before.

**What the L2 keeps** of a footprint of ``x`` L2 capacities. The inclusive cache picks its victim at
random among the ``W`` ways of a set, valid or not (rocket-chip-inclusive-cache @850e121
``Directory.scala`` L112-121), so a pass that inserts ``W·x`` lines into each set leaves each line
alive with probability ``1 − 1/W`` per later insert, and the set holds ``W·(1 − (1 − 1/W)^{W·x})`` of
them: a share ``(1 − (1 − 1/W)^{W·x}) / x`` of the footprint (0.66 at x = 1 with 8 ways, 0.94 at
x = 1/4), and all of it below one line a set (x < 1/W, where the formula would pass 1). A footprint larger than the L2 leaves nothing the next pass can use: that pass walks the
tensors from their start again, and its own misses evict the surviving lines before it reaches them
(the 128x128 file's rows 1408-1426 read a 1 MB weight matrix right after the tiler's run read it, and
measure the cold stream to within 0.3 %). A software-managed L2 (no ``ways``) keeps a footprint that
fits it whole.

**Memory-side cache** (``dram.cache_kib``, FireSim's FASED last-level-cache model in DOSA's image). Behind
the L2, the memory serves a line from its own cache at ``dram.bytes_per_cycle`` and a miss at
``dram.miss_bytes_per_cycle``. What it holds when a run starts follows the same rule as the L2, with its
own capacity and ways: after a run over the same operands (``l2.warm_start``) the random-victim share of
the compulsory footprint, nothing of a footprint larger than it; in a cold run nothing. So the run's first
fills that do not hit the L2 cost the mix of the two rates (:func:`memory_cycles_per_first_byte`), and a
layer's memory time grows by :func:`cache_miss_cycles`. A conv's input and weight reloads miss it by the
same rule over the data that passes between two walks (:func:`gemmap.convmodel.cache_reload_cycles`);
matmul reloads stay at the hit rate.

**Dirty victims** (``dram.victim_bytes_per_cycle``). When a miss finds its set full, FASED's LLC model picks a
random victim, and a dirty one is written back before the refill, holding its state machine for the
block's beats (firesim-dosa @eeb9fdb7 ``LastLevelCache.scala`` L212-228, L303, L333-335, L365-395). The
lines it holds dirty are the ones written into it, the L2's write-backs of a layer's output; the chance
that a victim is dirty is taken as the output's share of the layer's compulsory bytes, so every byte
that misses costs ``share / victim_bytes_per_cycle`` more (:func:`victim_cycles_per_byte`). It is the
layer's share, not what the cache holds when the run starts.

**Write-allocate through the memory** (``l2.allocate_through_memory``). The L2's fetch of an output line
before a partial write (gemmap/dma.py, Write-allocate) and the write-back of a line it fetched again are
transactions of the memory behind it, which serves one at a time (FASED's LLC model: one state machine,
firesim-dosa @eeb9fdb7 ``LastLevelCache.scala`` L188-411), so they share its time with the DMA's own
misses; the memory bytes count each output byte written once. :func:`allocate_memory_cycles` adds the
rest: each line's first fetch at the hit rate (whether that first transaction of the line misses the
memory-side cache is already in :func:`cache_miss_cycles`, through the output's compulsory bytes: the
write-back that follows the fetch then hits), and each line fetched again (a conv's output-line
re-fetches, :func:`gemmap.convmodel.refetch_lines`) at the hit rate plus the misses of what the
memory-side cache did not keep over the data between two writes to it, and written back once more at
the hit rate.
"""

from __future__ import annotations

import math

import numpy as np

from gemmap.arch import Arch
from gemmap.conv import ConvShape, compulsory_bytes, conv_shape
from gemmap.workload import Problem


def kept_shares(capacity: int, ways: int | None, footprint) -> np.ndarray:
    """The share of a ``footprint``-byte pass (any shape) a random-victim cache of ``capacity`` bytes and
    ``ways`` ways (None: any byte anywhere) still holds after it (module docstring); 0 for an empty pass
    or one larger than the cache."""
    f = np.asarray(footprint, dtype=np.float64)
    if capacity <= 0:
        return np.zeros(f.shape)
    x = np.maximum(f, 1.0) / capacity
    if ways is None:
        share = np.ones(f.shape)
    else:  # below one line a set (W·x < 1) every line survives; the survival formula would pass 1
        share = np.minimum(1.0, (1.0 - (1.0 - 1.0 / ways) ** (ways * x)) / x)
    return np.where((f > 0) & (f <= capacity), share, 0.0)


def _kept(capacity: int, ways: int | None, footprint: int) -> float:
    """:func:`kept_shares` of one footprint."""
    return float(kept_shares(capacity, ways, footprint))


def kept_share(arch: Arch, footprint: int) -> float:
    """The share of a ``footprint``-byte pass the L2 still holds after it (module docstring)."""
    return 0.0 if arch.l2 is None else _kept(arch.l2.bytes, arch.l2.ways, footprint)


def _warm(arch: Arch) -> bool:
    return arch.l2 is not None and arch.l2.warm_start


def compulsory_by_tensor(arch: Arch, problem: Problem) -> tuple[int, int, int]:
    """Bytes of A (the input pixels some output reads), B and C, each moved once (a matmul as the
    conv special case: M·K, K·N, M·N)."""
    return compulsory_bytes(conv_shape(problem, arch), arch.datatypes)


def warm_by_tensor(arch: Arch, problem: Problem) -> tuple[int, int, int]:
    """Bytes of A, B and C the run finds in the L2 (0 without ``l2.warm_start``)."""
    if not _warm(arch):
        return (0, 0, 0)
    comp = compulsory_by_tensor(arch, problem)
    share = kept_share(arch, sum(comp))
    return tuple(math.floor(share * c) for c in comp)  # type: ignore[return-value]


def cold_share(arch: Arch, problem: Problem) -> float:
    """The share of the run's first fills that come from memory: 1 unless ``l2.warm_start``, then
    1 − :func:`kept_share` of the compulsory footprint (the first tile's loads, model.first_load_lift)."""
    if not _warm(arch):
        return 1.0
    return 1.0 - kept_share(arch, sum(compulsory_by_tensor(arch, problem)))


def memory_cycles_per_first_byte(arch: Arch, problem: Problem) -> float:
    """Memory cycles per byte of the run's first fills that come from memory. Behind a memory-side
    cache (``dram.cache_kib``) the share of them it holds when the run starts arrives at
    ``dram.bytes_per_cycle`` and the rest at ``dram.miss_bytes_per_cycle`` plus their dirty victims
    (:func:`victim_cycles_per_byte`); what it holds follows the L2's rule: with ``l2.warm_start`` the
    random-victim share of the compulsory footprint, nothing of one larger than it, and nothing at all
    in a cold run (module docstring, "Memory-side cache"). Without one, ``1 / dram.bytes_per_cycle``; a
    miss is charged at the slower of the two rates. The warm start is the L2's flag, so without an L2
    the cache starts cold."""
    d = arch.dram
    if d.cache_kib is None or d.miss_bytes_per_cycle is None:
        return 1.0 / d.bytes_per_cycle
    held = _kept(d.cache_bytes, d.cache_ways, sum(compulsory_by_tensor(arch, problem))) if _warm(arch) else 0.0
    return held / d.bytes_per_cycle + (1.0 - held) * (
        1.0 / d.bytes_per_cycle + miss_cycles_per_byte(arch, conv_shape(problem, arch))
    )


def victim_cycles_per_byte(arch: Arch, shape: ConvShape) -> float:
    """Memory cycles a byte that misses the memory-side cache adds for the dirty victim its refill
    evicts (module docstring, "Dirty victims"): the layer's output share of its compulsory bytes (the
    lines the cache holds dirty) at ``1 / dram.victim_bytes_per_cycle``; 0 without a victim rate."""
    d = arch.dram
    if d.cache_kib is None or d.victim_bytes_per_cycle is None:
        return 0.0
    a, b, c = compulsory_bytes(shape, arch.datatypes)
    return c / max(a + b + c, 1) / d.victim_bytes_per_cycle


def miss_cycles_per_byte(arch: Arch, shape: ConvShape) -> float:
    """Memory cycles a byte that misses the memory-side cache takes beyond a hit, its dirty victims
    included (0 without one; a miss is never faster than a hit: a capped or fitted hit rate)."""
    d = arch.dram
    if d.cache_kib is None or d.miss_bytes_per_cycle is None:
        return 0.0
    clean = 1.0 / min(d.miss_bytes_per_cycle, d.bytes_per_cycle) - 1.0 / d.bytes_per_cycle
    return clean + victim_cycles_per_byte(arch, shape)


def cache_miss_cycles(arch: Arch, problem: Problem) -> float:
    """Memory cycles the first fills take beyond ``dram.bytes_per_cycle`` because they miss the
    memory-side cache: the compulsory bytes not in a warm L2, times the difference of
    :func:`memory_cycles_per_first_byte` and the hit rate (0 without a cache). Reloads are costed at
    the hit rate here; a conv's reloads that the cache cannot keep are :func:`gemmap.convmodel.cache_reload_cycles`."""
    extra = memory_cycles_per_first_byte(arch, problem) - 1.0 / arch.dram.bytes_per_cycle
    if extra <= 0.0:
        return 0.0
    return (sum(compulsory_by_tensor(arch, problem)) - warm_bytes(arch, problem)) * extra


def allocate_memory_cycles(arch: Arch, problem: Problem, first_lines, refetched_lines=0.0, refetch_footprint=0.0):
    """Memory cycles of the L2's write-allocate traffic that the memory bytes do not count (module
    docstring, "Write-allocate through the memory"): ``first_lines`` output lines fetched once (at the
    hit rate: their misses are the output's compulsory bytes' in :func:`cache_miss_cycles`), and
    ``refetched_lines`` fetched and written back again after ``refetch_footprint`` bytes passed
    through the memory-side cache. 0 unless ``l2.allocate_through_memory``. Broadcasts."""
    first = np.asarray(first_lines, dtype=np.float64)
    if arch.l2 is None or not arch.l2.allocate_through_memory:
        return np.zeros(np.broadcast(first, refetched_lines, refetch_footprint).shape)
    d, line = arch.dram, arch.l2.line_bytes
    again = np.asarray(refetched_lines, dtype=np.float64)
    missed = 0.0
    if d.cache_kib is not None:
        missed = 1.0 - kept_shares(d.cache_bytes, d.cache_ways, refetch_footprint)
    per_again = 2.0 / d.bytes_per_cycle + missed * miss_cycles_per_byte(arch, conv_shape(problem, arch))
    return line * (first / d.bytes_per_cycle + again * per_again)


def warm_bytes(arch: Arch, problem: Problem) -> int:
    """All the bytes the run finds in the L2: what every mapping's memory bytes drop by."""
    return sum(warm_by_tensor(arch, problem))


__all__ = [
    "allocate_memory_cycles",
    "cache_miss_cycles",
    "cold_share",
    "compulsory_by_tensor",
    "kept_share",
    "kept_shares",
    "miss_cycles_per_byte",
    "victim_cycles_per_byte",
    "memory_cycles_per_first_byte",
    "warm_by_tensor",
    "warm_bytes",
]
