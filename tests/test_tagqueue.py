"""The mesh's tag queue (gemmap.tagqueue): hand-worked folds, and the max-plus steady state against a
brute-force simulation of the queue's recurrence (tests/convloopnest.block_period)."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemmap import tagqueue
from gemmap.arch import load_arch
from gemmap.errors import GemmapError
from tests.convloopnest import block_period

BASE = load_arch("gemmini-firesim")


def arch_with(dim: int, tag_queue: int = 6, latency: int | None = None):
    pe = dataclasses.replace(BASE.pe_array, rows=dim, cols=dim, tag_queue=tag_queue, latency_cycles=latency)
    return dataclasses.replace(BASE, pe_array=pe)


def power(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """a ⊗ … ⊗ a (``e`` (n,) times, the identity for 0) by repeated squaring."""
    n, w, _ = a.shape
    out = np.full((n, w, w), -np.inf)
    out[:, np.arange(w), np.arange(w)] = 0.0
    e = e.astype(np.int64).copy()
    while np.any(e > 0):
        odd = (e & 1).astype(bool)
        if odd.any():
            out[odd] = tagqueue._times(a[odd], out[odd])
        e >>= 1
        if np.any(e > 0):
            a = tagqueue._times(a, a)
    return out


def fold_growth(dim: int, window: int, latency: int, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Ticks (of ``1 / lcm(1..window)`` cycle) per fold of ``lines`` lines of ``rows`` rows, by the
    max-plus product of all its requests (gemmap/tagqueue.py's docstring): the reference the
    tabulated, periodically extended :func:`gemmap.tagqueue.stream_ticks` is checked against."""
    q = math.lcm(*range(1, window + 1))
    full, rem = rows // dim, rows % dim
    short = np.maximum(rem, tagqueue.MIN_ROWS)
    a_dim = tagqueue._request(np.full(rows.shape, dim), latency, window)
    a_rem = tagqueue._request(short, latency, window)
    # rows < DIM: the block is [DIM, rem × (lines − 1)]; rows ≥ DIM: each line is [DIM × full, rem]
    wide = full >= 1
    block = tagqueue._times(power(a_rem, np.where(wide, 0, lines - 1)), a_dim)
    line = power(a_dim, full)
    line = np.where((wide & (rem > 0))[:, None, None], tagqueue._times(a_rem, line), line)
    per = tagqueue._growth_ticks(np.where(wide[:, None, None], line, block), q).astype(np.int64)
    return np.where(wide, per * lines, per)


def cycles(arch, rows: int, lines: int) -> Fraction:
    return Fraction(tagqueue.stream_ticks(arch, rows, lines), tagqueue.ticks_per_cycle(arch))


def requests(dim: int, rows: int, lines: int) -> tuple[int, ...]:
    """The fold's request sizes as LoopConvExecute issues them (max(rows, 4); the first DIM rows)."""
    out: list[int] = []
    for _ in range(lines):
        for col in range(0, rows, dim):
            out.append(dim if not out else max(min(dim, rows - col), tagqueue.MIN_ROWS))
    return tuple(out)


def test_one_pixel_rows_by_hand():
    # DIM 16, latency 32, 5 requests in the queue. A fold of 4 lines of 1 pixel is the requests
    # 16, 4, 4, 4 (the first carries the weights; the others feed max(1, 4) = 4 rows), fold after fold.
    # Request k + 5 starts no earlier than 32 cycles after request k's rows went in; chaining that
    # wait from each request to the one 5 later visits the 4 positions of a fold once every 20
    # requests (5 folds): (16 + 32) + 3·(4 + 32) = 156 cycles per 5 folds, 31.2 a fold, above the 28
    # rows it feeds. Charged one request at a time, max(r, (r + 32) / 5), it was 16 + 3·7.2 = 37.6;
    # the measured runs of such tiles take 32.2 a fold (docs/validation.md).
    assert cycles(arch_with(16), 1, 4) == Fraction(156, 5)


def test_long_first_request_hides_the_short_ones():
    # 16, 4 repeated: five requests feed at least 16 + 4 + 16 + 4 + 16 = 56 cycles ≥ 48 = 16 + 32,
    # so the queue never binds: 20 cycles a fold (the measured 20.0 of 128x128 row 214).
    assert cycles(arch_with(16), 2, 2) == 20
    # DIM 32, latency 64: 32, 4 → 36 a fold.
    assert cycles(arch_with(32), 1, 2) == 36


def test_wide_rows_cost_their_rows():
    # 23-pixel rows at DIM 16: 16 + 7 per line; any five requests hold two 16s, 40 ≥ 32 + … : rows only.
    assert cycles(arch_with(16), 23, 22) == 22 * 23
    assert cycles(arch_with(16), 5, 1) == 16  # a one-request fold: its DIM rows


def test_small_arrays_never_throttle():
    # DIM 4 and 8: four requests of ≥ 4 rows feed ≥ 16 cycles ≥ latency 8 / 16: whole cycles, rows only.
    for dim in (4, 8):
        a = arch_with(dim)
        assert not a.pe_array.throttles and tagqueue.ticks_per_cycle(a) == 1
        assert tagqueue.stream_ticks(a, 3, 5) == dim + 4 * 4
    assert arch_with(16).pe_array.throttles and tagqueue.ticks_per_cycle(arch_with(16)) == 60


@settings(max_examples=60, deadline=None)
@given(
    dim=st.sampled_from([4, 8, 16, 32, 64]),
    rows=st.integers(1, 150),
    lines=st.integers(1, 12),
    tag_queue=st.integers(2, 8),
    latency=st.one_of(st.none(), st.integers(1, 200)),
)
def test_steady_state_equals_a_brute_force_simulation(dim, rows, lines, tag_queue, latency):
    a = arch_with(dim, tag_queue, latency)
    want = block_period(requests(dim, rows, lines), a.pe_array.array_latency, a.pe_array.window)
    assert cycles(a, rows, lines) == want
    # bounds: at least the rows fed; at most every request waiting the longest one plus the latency
    reqs = requests(dim, rows, lines)
    assert sum(reqs) <= want <= len(reqs) * (max(reqs) + a.pe_array.array_latency)


@settings(max_examples=40, deadline=None)
@given(
    dim=st.sampled_from([16, 32]),
    rows=st.integers(1, 40),
    lines=st.integers(13, 40),
    tag_queue=st.integers(3, 7),
)
def test_long_folds_follow_the_period(dim, rows, lines, tag_queue):
    """Counts past the tabulated 3W come back by whole periods of W (gemmap.tagqueue._table)."""
    a = arch_with(dim, tag_queue)
    want = block_period(requests(dim, rows, lines), a.pe_array.array_latency, a.pe_array.window)
    assert cycles(a, rows, lines) == want
    big = np.array([rows + 7 * dim, rows]), np.array([1, lines + 50])
    direct = fold_growth(dim, a.pe_array.window, a.pe_array.array_latency, *big)
    assert list(tagqueue.stream_ticks(a, *big)) == list(direct)


@settings(max_examples=60, deadline=None)
@given(
    dim=st.sampled_from([16, 32, 64, 128]),
    rows=st.integers(1, 2000),
    lines=st.integers(1, 500),
    tag_queue=st.integers(2, 13),
    latency=st.one_of(st.none(), st.integers(1, 2000)),
)
def test_table_equals_the_direct_product(dim, rows, lines, tag_queue, latency):
    """The tabulated, periodically extended folds equal the max-plus product of every request, for
    queues up to the longest counted (W = 12) and counts far past the table."""
    a = arch_with(dim, tag_queue, latency)
    pe = a.pe_array
    if not pe.throttles:
        return
    direct = fold_growth(dim, pe.window, pe.array_latency, np.array([rows]), np.array([lines]))
    assert tagqueue.stream_ticks(a, rows, lines) == int(direct[0])


def test_batched_equals_scalar():
    a = arch_with(16)
    rows = np.array([1, 2, 7, 16, 23, 40, 1, 2])
    lines = np.array([4, 2, 7, 1, 22, 3, 4, 9])
    batch = tagqueue.stream_ticks(a, rows, lines)
    assert batch.dtype == np.int64
    assert list(batch) == [tagqueue.stream_ticks(a, int(r), int(n)) for r, n in zip(rows, lines)]


def test_too_long_a_queue_is_refused():
    with pytest.raises(GemmapError, match="tag_queue"):
        arch_with(64, tag_queue=40, latency=1000).checked("t.yaml")
    with pytest.raises(GemmapError, match="at least 2"):
        arch_with(16, tag_queue=1).checked("t.yaml")
    arch_with(64, tag_queue=65536, latency=1).checked("t.yaml")  # never throttles: fine
