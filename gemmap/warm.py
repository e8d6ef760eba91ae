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
"""

from __future__ import annotations

import math

from gemmap.arch import Arch
from gemmap.conv import compulsory_bytes, conv_shape
from gemmap.workload import Problem


def kept_share(arch: Arch, footprint: int) -> float:
    """The share of a ``footprint``-byte pass the L2 still holds after it (module docstring)."""
    l2 = arch.l2
    if l2 is None or footprint <= 0 or footprint > l2.bytes:
        return 0.0
    if l2.ways is None:
        return 1.0
    x = footprint / l2.bytes
    # fewer than one line a set (n = W·x < 1): every line survives; the survival formula would pass 1
    return min(1.0, (1.0 - (1.0 - 1.0 / l2.ways) ** (l2.ways * x)) / x)


def compulsory_by_tensor(arch: Arch, problem: Problem) -> tuple[int, int, int]:
    """Bytes of A (the input pixels some output reads), B and C, each moved once (a matmul as the
    conv special case: M·K, K·N, M·N)."""
    return compulsory_bytes(conv_shape(problem, arch), arch.datatypes)


def warm_by_tensor(arch: Arch, problem: Problem) -> tuple[int, int, int]:
    """Bytes of A, B and C the run finds in the L2 (0 without ``l2.warm_start``)."""
    if arch.l2 is None or not arch.l2.warm_start:
        return (0, 0, 0)
    comp = compulsory_by_tensor(arch, problem)
    share = kept_share(arch, sum(comp))
    return tuple(math.floor(share * c) for c in comp)  # type: ignore[return-value]


def cold_share(arch: Arch, problem: Problem) -> float:
    """The share of the run's first fills that come from memory: 1 unless ``l2.warm_start``, then
    1 − :func:`kept_share` of the compulsory footprint (the first tile's loads, model.first_load_lift)."""
    if arch.l2 is None or not arch.l2.warm_start:
        return 1.0
    return 1.0 - kept_share(arch, sum(compulsory_by_tensor(arch, problem)))


def warm_bytes(arch: Arch, problem: Problem) -> int:
    """All the bytes the run finds in the L2: what every mapping's memory bytes drop by."""
    return sum(warm_by_tensor(arch, problem))


__all__ = ["cold_share", "compulsory_by_tensor", "kept_share", "warm_by_tensor", "warm_bytes"]
