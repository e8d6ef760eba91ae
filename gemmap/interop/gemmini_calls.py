"""A Timeloop loop nest as the Gemmini calls DOSA's flow turns it into (docs/validation.md).

DOSA's data collection (ucb-bar/gemmini-rocc-tests, branch ``dosa`` @ 959b23f7,
``gemmini-data-collection/layers/extract_data_csv.py`` L30-86 and ``templates/{matmul,conv}_tilings.c``)
keeps only the tile held by the accumulator level and the order of the DRAM-level loops:

* tiles in elements: batches = N@L1; ocols = P@L1·P@L0; orows = Q@L1·Q@L0; ochs = K@L1·K@L2(spatial);
  krows = S@L1; kcols = R@L1; kchs = C@L1·C@L1(spatial) — a dim repeated among L1's temporal loops
  counts by its last occurrence; L2 temporal factors and the other L0 factors are dropped;
* ``perm`` = the L3 loop letters innermost first, then the dims of ``CRSKPQN`` not among them;
* a matmul (Q = R = S = 1; I = P, K = C, J = K) runs ``tiled_matmul`` with tiles in DIM blocks,
  ``tile = 1 if T < 16 else T >> 4`` (matmul_tilings.c L125-127: floored, and by 16 whatever the DIM);
* a conv runs ``tiled_conv`` square, with ``in_dim = P·Wstride``, ``padding = R // 2`` and
  ``out_dim = (in_dim + 2·padding − R) / stride + 1`` (conv_tilings.c L73-96).

``pe_dim_for`` is DOSA's choice of array size for the 128×128 file: the smallest power of two ≥ both
spatial factors (gemmini_data_collection.py ``per_pe_dim`` L161-167).
"""

from __future__ import annotations

import dataclasses

from gemmap.errors import GemmapError
from gemmap.interop.timeloop import LoopNest

#: tiled_conv's / tiled_matmul's default permutation letters, innermost first (extract_data_csv.py L80-86)
PERM_DIMS = "CRSKPQN"
#: the orders Gemmini's own tilers use, innermost first (gemmini.h L1398, L2899 of DOSA's copy)
AUTO_MATMUL_PERM = "CKPQRSN"
AUTO_CONV_PERM = "CRSKPQN"


@dataclasses.dataclass(frozen=True)
class MatmulCall:
    """``tiled_matmul(I, J, K, ..., tile_I, tile_J, tile_K, ..., WS, perm)``: C[I,J] = A[I,K]·B[K,J],
    tiles in DIM blocks, ``perm`` innermost first over CRSKPQN (only P = I, K = J, C = K matter)."""

    I: int  # noqa: E741 - Gemmini's name
    J: int
    K: int
    tile_I: int
    tile_J: int
    tile_K: int
    perm: str

    def outer_order(self) -> str:
        """The software loop order outermost first in gemmap's dims (M = I, N = J, K = K)."""
        names = {"P": "M", "K": "N", "C": "K"}
        return "".join(names[d] for d in reversed(self.perm) if d in names)


@dataclasses.dataclass(frozen=True)
class ConvCall:
    """``tiled_conv`` with its layer and tile arguments (square input and output, WS)."""

    batch_size: int
    in_dim: int
    in_channels: int
    out_channels: int
    out_dim: int
    stride: int
    kernel_dilation: int
    padding: int
    kernel_dim: int
    batches: int
    porows: int
    pocols: int
    pochs: int
    krows: int
    kcols: int
    kchs: int
    perm: str


def _last(nest: LoopNest, level: str, dim: str, spatial: bool) -> int:
    """The bound of ``dim``'s last loop of that kind at ``level`` (1 if none): DOSA keys factors by letter."""
    bound = 1
    for loop in nest.level(level).loops:
        if loop.dim == dim and loop.spatial == spatial:
            bound = loop.bound
    return bound


def _require_levels(nest: LoopNest) -> None:
    for name in ("L3", "L2", "L1", "L0"):
        nest.level(name)  # a missing level is a one-line error naming it


def accumulator_tile(nest: LoopNest) -> dict[str, int]:
    """The tile DOSA hands to Gemmini, in elements, by Timeloop dim (module docstring)."""
    _require_levels(nest)
    f = _last
    return {
        "N": f(nest, "L1", "N", False),
        "P": f(nest, "L1", "P", False) * f(nest, "L0", "P", False),
        "Q": f(nest, "L1", "Q", False) * f(nest, "L0", "Q", False),
        "K": f(nest, "L1", "K", False) * f(nest, "L2", "K", True),
        "S": f(nest, "L1", "S", False),
        "R": f(nest, "L1", "R", False),
        "C": f(nest, "L1", "C", False) * f(nest, "L1", "C", True),
    }


def perm_of(nest: LoopNest) -> str:
    """The L3 loop letters innermost first, then the rest of CRSKPQN (extract_data_csv.py L80-86)."""
    letters: list[str] = []
    for loop in reversed(nest.level("L3").loops):
        if loop.dim not in letters:
            letters.append(loop.dim)
    return "".join(letters) + "".join(d for d in PERM_DIMS if d not in letters)


def pe_dim_for(nest: LoopNest, choices: tuple[int, ...] = (2, 4, 8, 16, 32, 64, 128)) -> int:
    """The smallest array size ≥ both spatial factors (C at L1 across rows, K at L2 across columns)."""
    need = max(_last(nest, "L1", "C", True), _last(nest, "L2", "K", True))
    for d in choices:
        if d >= need:
            return d
    raise GemmapError(f"mapping: spatial factor {need} is wider than the largest array ({choices[-1]})")


def _blocks(t: int) -> int:
    """matmul_tilings.c L125-127: a tile in 16-element blocks, floored, at least one."""
    return 1 if t < 16 else t >> 4


def matmul_call(nest: LoopNest, layer: dict[str, int]) -> MatmulCall:
    """The ``tiled_matmul`` DOSA's flow runs for a matmul row (P = I, C = K, K = J)."""
    t = accumulator_tile(nest)
    return MatmulCall(
        I=layer["P"],
        J=layer["K"],
        K=layer["C"],
        tile_I=_blocks(t["P"]),
        tile_J=_blocks(t["K"]),
        tile_K=_blocks(t["C"]),
        perm=perm_of(nest),
    )


def conv_call(nest: LoopNest, layer: dict[str, int]) -> ConvCall:
    """The ``tiled_conv`` DOSA's flow runs for a conv row (conv_tilings.c L73-96, L175-195)."""
    t = accumulator_tile(nest)
    stride, R = layer["Wstride"], layer["R"]
    in_dim = layer["P"] * stride
    padding = R // 2
    out_dim = (in_dim + 2 * padding - R) // stride + 1
    if out_dim < 1:
        raise GemmapError(f"layer: kernel {R} larger than the padded input {in_dim + 2 * padding}")
    return ConvCall(
        batch_size=layer["N"],
        in_dim=in_dim,
        in_channels=layer["C"],
        out_channels=layer["K"],
        out_dim=out_dim,
        stride=stride,
        kernel_dilation=layer["Wdilation"],
        padding=padding,
        kernel_dim=R,
        batches=t["N"],
        porows=t["Q"],
        pocols=t["P"],
        pochs=t["K"],
        krows=t["S"],
        kcols=t["R"],
        kchs=t["C"],
        perm=perm_of(nest),
    )
