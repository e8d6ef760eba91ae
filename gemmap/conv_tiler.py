"""Gemmini's own conv tiler, ``tiled_conv_auto``, re-derived as a rule (not a transcription).

``tiled_conv_auto`` (ucb-bar/gemmini-rocc-tests ``include/gemmini.h`` @180c468, L2834-2866)
calls ``tiled_conv_stride_auto`` (L2638-2831), which picks the 7 tile args
``[batches, porows, pocols, pochs, krows, kcols, kchs]`` in three phases, with the budgets
half of each memory "for the sake of double-buffering" (L2679-2681: ``BANK_NUM·BANK_ROWS/2``
scratchpad rows, ``ACC_ROWS/2`` accumulator rows) and the footprints of
``tiled_conv_total_spad_rows`` (:func:`gemmap.conv.spad_rows_needed`, :func:`gemmap.conv.acc_rows_needed`):

1. **Shrink** (L2690-2721). Start from the whole conv. While either footprint is over budget,
   take the largest arg (the first on ties) — except that ``pocols`` is skipped while it is
   ≤ DIM and ``porows`` > 1, to keep the array's rows busy (L2695-2697) — and shrink it: a
   channel arg (``pochs``, ``kchs``) drops to the multiple of DIM below it, or by DIM when it is
   one already (never below 1) (L2703-2710); any other arg drops by 1.
2. **Grow pocols** (L2723-2745): add 1 to ``pocols`` while it fits and stays ≤ Q.
3. **Grow all** (L2747-2772): sweep the args in order, adding 1 to each that still fits and
   stays ≤ its dim; repeat sweeps until one changes nothing.

The result runs in Gemmini's loop order (``bpqkrsc``), weight-stationary, double-buffered.
It lives beside the conv mapping (not under ``search``) because the conv mapspace includes its tile.
"""

from __future__ import annotations

import dataclasses

from gemmap.arch import Arch, Software
from gemmap.conv import ConvMapping, ConvShape, acc_rows_needed, conv_shape, spad_rows_needed
from gemmap.workload import Problem

_POROWS, _POCOLS, _POCHS, _KCHS = 1, 2, 3, 6


def _fits(arch: Arch, shape: ConvShape, args: list[int]) -> bool:
    """Both footprints within half of their memory (the double-buffering budget)."""
    return (
        spad_rows_needed(arch, shape, args) <= arch.spad_rows // 2 and acc_rows_needed(arch, args) <= arch.acc_rows // 2
    )


@dataclasses.dataclass(frozen=True)
class TilerSearch:
    """What ``tiled_conv_auto``'s search does on the host: the tile args it picks and how many
    candidates it sizes (each a ``tiled_conv_total_spad_rows`` call for the scratchpad and one for
    the accumulator) in the shrink phase (the first sizing and one per step, each step also scanning
    the 7 args for the largest) and in the two grow phases."""

    args: tuple[int, int, int, int, int, int, int]
    shrink_checks: int
    grow_checks: int

    def host_cycles(self, software: Software) -> float:
        """Host cycles of the search (``software.conv_tiler_shrink/grow_check_cycles`` per check)."""
        return (
            self.shrink_checks * software.conv_tiler_shrink_check_cycles
            + self.grow_checks * software.conv_tiler_grow_check_cycles
        )


def tiled_conv_auto_search(arch: Arch, shape: ConvShape) -> TilerSearch:
    """``tiled_conv_auto``'s tile search (module docstring, phases 1-3), counting its sizing checks."""
    dim = arch.dim_cols
    top = list(shape.dims)
    args = list(top)
    shrink = 1
    while not _fits(arch, shape, args):
        candidates = [i for i in range(7) if not (i == _POCOLS and args[i] <= dim and args[_POROWS] > 1)]
        i = max(candidates, key=lambda j: (args[j], -j))
        if all(args[j] <= 1 for j in candidates) and args[i] <= 1:
            break  # nothing left to shrink: the conv cannot fit (Gemmini would loop forever)
        if i in (_POCHS, _KCHS):
            args[i] = args[i] // dim * dim if args[i] % dim else args[i] - dim
            args[i] = max(args[i], 1)
        else:
            args[i] -= 1
        shrink += 1
    grow = 0
    while args[_POCOLS] + 1 <= top[_POCOLS]:
        trial = list(args)
        trial[_POCOLS] += 1
        grow += 1
        if not _fits(arch, shape, trial):
            break
        args = trial
    changed = True
    while changed:
        changed = False
        for i in range(7):
            trial = list(args)
            trial[i] += 1
            if trial[i] <= top[i]:
                grow += 1
                if _fits(arch, shape, trial):
                    args, changed = trial, True
    return TilerSearch(tuple(args), shrink, grow)  # type: ignore[arg-type]


def tiled_conv_auto_args(arch: Arch, shape: ConvShape) -> tuple[int, int, int, int, int, int, int]:
    """The 7 tile args ``tiled_conv_auto`` picks (module docstring, phases 1-3)."""
    return tiled_conv_auto_search(arch, shape).args


def tiled_conv_auto(arch: Arch, problem: Problem) -> ConvMapping:
    """Gemmini's ``tiled_conv_auto`` tiling of ``problem`` as a :class:`ConvMapping`."""
    return ConvMapping(tile=tiled_conv_auto_args(arch, conv_shape(problem, arch)))
