"""LoopConv's input loader on tiles whose window lies wholly in the padding (gemmap/conv_ring.py):
the closed form against a walk of the RTL's iterators, a hand case, and the model's use of it."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemmap import conv_ring
from gemmap.arch import load_arch
from gemmap.conv import ConvMapping, ConvMappingBatch, ConvShape, axis_ring, loader_never_ends
from gemmap.convmodel import evaluate_conv, evaluate_conv_batch
from tests.test_convspace import conv_problem

GEMMINI = load_arch(Path(__file__).resolve().parents[1] / "arch" / "gemmini.yaml")


def _wrap(x: int, bits: int, signed: bool) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if signed and x >> (bits - 1) else x


def _walk(lpad: int, rpad: int, unpadded: int, step: int, bits: int) -> tuple[int, int] | None:
    """(real, zero) lines LoopConvLdInput's iterator moves along one axis (LoopConv.scala L359-378,
    Util.scala sFloorAdd): from −lpad in steps of at most ``step`` (``step`` = 1 for rows) until it is
    back at −lpad, with the unpadded extent in an unsigned ``bits``-wide field and the iterator in a
    signed one; a step from position x moves min(step, distance to the next boundary) lines, zeros
    when x is outside [0, unpadded). None when it does not come back within two laps of the ring."""
    u = _wrap(unpadded, bits, False)
    x, real, zero = -lpad, 0, 0
    for _ in range(2 << bits):
        if x < 0:
            n = min(-x, step)
        elif x >= u:
            n = min(u + rpad - x, step)
        else:
            n = min(u - x, step)
        if 0 <= x < u:
            real += n
        else:
            zero += n
        nxt = x + n
        x = -lpad if nxt >= u + rpad else _wrap(nxt, bits, True)
        if x == -lpad:
            return real, zero
    return None


def _brute(shape: ConvShape, p_t: int, r_t: int, q_t: int, s_t: int, dim: int, bits: int) -> tuple[int, int] | None:
    """(real, total) input pixels moved for the tiles with a wrapped axis, walking gemmini.h tiled_conv's
    tile loop (L2356-2458: window start, span, lpad/rpad/upad/dpad) and the loader's iterators; None
    when some tile's loader never finishes."""
    real = total = 0

    def axis(o0: int, o_t: int, out: int, k0: int, k_t: int, kern: int, size: int) -> tuple[int, int, int]:
        span = min(o_t, out - o0) * shape.stride + (min(k_t, kern - k0) - 1) * shape.dilation
        start = o0 * shape.stride + k0 * shape.dilation - shape.padding
        lo, hi = max(-start, 0), max(start + span - size, 0)
        return lo, hi, span - lo - hi

    for p0, r0, q0, s0 in itertools.product(
        range(0, shape.p, p_t), range(0, shape.r, r_t), range(0, shape.q, q_t), range(0, shape.s, s_t)
    ):
        up, dp, ur = axis(p0, p_t, shape.p, r0, r_t, shape.r, shape.input_rows)
        lp, rp, uc = axis(q0, q_t, shape.q, s0, s_t, shape.s, shape.input_cols)
        if ur >= 0 and uc >= 0:
            continue
        rows, cols = _walk(up, dp, ur, 1, bits), _walk(lp, rp, uc, dim, bits)
        if rows is None or cols is None:
            return None
        (row_real, row_zero), (col_real, col_zero) = rows, cols
        real += row_real * col_real
        total += (row_real + row_zero) * (col_real + col_zero)
    return shape.n * real, shape.n * total


def test_hand_case_even_kernel_edge_tile():
    # 8×8 input, 4×4 kernel, padding 2 (R // 2), stride 1: out_dim 9. Column tiles of 8 outputs (the
    # second holds output column 8 alone) and kernel columns one at a time: the pair (q0 = 8, s0 = 3)
    # starts at 8 + 3 − 2 = 9 > 8, past the image (its unpadded width 1 − 0 − 2 = −1 wraps), and
    # (q0 = 8, s0 = 2) starts at 8 = the image's end (width 0: no wrap). Rows: one tile of 9 rows
    # under all 4 kernel rows, a window of 9 + 3 = 12 rows from −2, 8 of them in the image.
    shape = ConvShape(n=1, k=8, c=16, p=9, q=9, r=4, s=4, stride=1, padding=2, h=8, w=8)
    rows = axis_ring(shape, True, 9, 4)
    cols = axis_ring(shape, False, 8, 1)
    assert (rows.wrapped, rows.fetched, rows.spans) == (0, 8, 12)
    assert (cols.wrapped, cols.endless) == (1, 0)  # it starts past the image: no left padding
    assert cols.wrapped == 1
    # 16-bit ring along the columns of that tile: 2^16 column positions per row of its 12-row window,
    # 2^15 of them real in each of the 8 image rows.
    real, total = conv_ring.ring_pixels(shape, 9, 4, 8, 1, 16)
    assert (real, total) == (8 * 32768, 12 * 65536)
    assert (real, total) == _brute(shape, 9, 4, 8, 1, dim=16, bits=16)


@settings(max_examples=200, deadline=None)
@given(
    hw=st.integers(3, 9),
    r=st.integers(1, 5),
    stride=st.integers(1, 2),
    n=st.integers(1, 2),
    data=st.data(),
)
def test_closed_form_equals_a_walk_of_the_iterators(hw, r, stride, n, data):
    # Any conv shape and tiling as tiled_conv builds them (padding R // 2, as DOSA's templates), with
    # 8-bit iterators so that the walk stays short: the closed form counts what the loader moves.
    pad = r // 2
    out = (hw + 2 * pad - r) // stride + 1
    shape = ConvShape(n=n, k=4, c=4, p=out, q=out, r=r, s=r, stride=stride, padding=pad, h=hw, w=hw)
    p_t, q_t = data.draw(st.integers(1, out)), data.draw(st.integers(1, out))
    r_t, s_t = data.draw(st.integers(1, r)), data.draw(st.integers(1, r))
    dim = data.draw(st.sampled_from([4, 8, 16]))
    arch = dataclasses.replace(GEMMINI, pe_array=dataclasses.replace(GEMMINI.pe_array, rows=dim, cols=dim))
    arch = dataclasses.replace(arch, dma=dataclasses.replace(arch.dma, conv_loader_bits=8))
    walked = _brute(shape, p_t, r_t, q_t, s_t, dim, 8)
    # a tiling is refused exactly when some tile's loader would never finish
    assert bool(loader_never_ends(arch, shape, q_t, s_t)) == (walked is None)
    if walked is not None:
        assert conv_ring.ring_pixels(shape, p_t, r_t, q_t, s_t, 8) == walked


def test_a_wrapped_tile_costs_its_ring(firesim_arch):
    # ResNet-like 56×56, C64 K64, 4×4 kernel (out_dim 57), one kernel column per tile and 7-column
    # tiles: the last column tile holds output column 56 alone, whose windows for kernel columns
    # 3 start past the image. Without the wrap the model costs this mapping near its compute.
    shape = ConvShape(n=1, k=64, c=64, p=57, q=57, r=4, s=4, stride=1, padding=2, h=56, w=56)
    problem = conv_problem(shape)
    m = ConvMapping(tile=(1, 14, 7, 16, 4, 1, 32), order="bkpqrsc")
    plain = dataclasses.replace(firesim_arch, dma=dataclasses.replace(firesim_arch.dma, conv_loader_bits=None))
    wrapped, normal = evaluate_conv(firesim_arch, problem, m), evaluate_conv(plain, problem, m)
    cycles, memory = (float(x[0]) for x in conv_ring.ring_terms(firesim_arch, shape, np.array([m.tile])))
    assert cycles > 0 and memory > 0
    # the input is reloaded once per output-channel tile (per-call reloads): 4 passes over the input tiles
    assert wrapped.dram_bytes == normal.dram_bytes + int(4 * memory)
    assert wrapped.cycles >= normal.cycles + 4 * cycles - normal.cycles  # the ring alone exceeds the run
    assert wrapped.cycles > 100 * normal.cycles
    # the batched model agrees with the scalar one to the cycle and the byte
    batch = ConvMappingBatch.from_mappings([m])
    cost = evaluate_conv_batch(firesim_arch, problem, batch)
    assert int(cost.cycles[0]) == wrapped.cycles
    assert int(cost.dram_bytes[0]) == wrapped.dram_bytes
    assert float(cost.energy_pj[0]) == pytest.approx(wrapped.energy_pj, rel=1e-12)


def test_which_windows_wrap():
    # 3×3 at stride 1, padding 1: a window of one output line under one kernel line starts at
    # o0 + k0 − 1 ≥ −1 and spans 1, so it always touches the image: no tiling wraps.
    shape = ConvShape(n=1, k=8, c=8, p=13, q=13, r=3, s=3, stride=1, padding=1, h=13, w=13)
    for o_t, k_t in itertools.product(range(1, 14), range(1, 4)):
        assert axis_ring(shape, True, o_t, k_t).wrapped == 0
    # 5×5, padding 2, 11 lines: output line 0 under kernel line 0 alone reads line −2 only, and output
    # line 10 under kernel line 4 reads line 12: two wrapped pairs with 1-line tiles. With 2-line tiles
    # the first window [−2, 0) is empty, not negative, but the last tile is line 10 alone: one pair.
    # With 3-line tiles the last (lines 9-10) under kernel line 4 starts at 11, the image's end: none.
    shape = ConvShape(n=1, k=8, c=8, p=11, q=11, r=5, s=5, stride=1, padding=2, h=11, w=11)
    assert axis_ring(shape, True, 1, 1).wrapped == 2
    assert axis_ring(shape, True, 2, 1).wrapped == 1
    assert axis_ring(shape, True, 3, 1).wrapped == 0
    assert axis_ring(shape, True, 1, 5).wrapped == 0


def test_a_never_ending_tiling_is_refused_in_one_line(firesim_arch):
    # 5×5 kernel, padding 2: one output column under one kernel column from the left edge reads
    # column −2 alone; at DIM 16 the loader's column ring steps 16 pixels at a time from −2 and never
    # lands on −2 again, so tiled_conv would not finish. The heuristic and the searches never pick it.
    from gemmap.conv import invalid_reason

    shape = ConvShape(n=1, k=16, c=16, p=8, q=8, r=5, s=5, stride=1, padding=2, h=8, w=8)
    problem = conv_problem(shape)
    reason = invalid_reason(firesim_arch, problem, ConvMapping(tile=(1, 8, 1, 16, 5, 1, 16)))
    assert reason is not None and "never finishes" in reason and "\n" not in reason
    assert invalid_reason(firesim_arch, problem, ConvMapping(tile=(1, 8, 2, 16, 5, 1, 16))) is None


def test_evaluate_says_when_the_loader_wraps(firesim_arch):
    from gemmap import api

    layer = api.layer_from_spec("conv B=1 K=64 C=64 P=57 Q=57 R=4 S=4 stride=1 padding=2 H=56 W=56")
    ev = api.evaluate_mapping(
        firesim_arch, layer, "L3[WIO] R4 K4 Q5 C2 P9 - L2[WI] N1 K16X - L1[O] S4 C2 Q14 C16X - L0[W] P7"
    )
    assert any("16-bit input loader" in note for note in ev.notes)
    plain = api.evaluate_mapping(
        firesim_arch, layer, "L3[WIO] K4 Q5 C2 P9 - L2[WI] N1 K16X - L1[O] R4 S4 C2 Q14 C16X - L0[W] P7"
    )
    assert not any("loader" in note for note in plain.notes)
