"""The two-loop tile sequence (gemmap/tileseq.py, gemmap/convseq.py): the max-plus fold of a loop nest
equals the tile-by-tile walk, the recurrence is pinned by hand on small cases, and the conv floor
equals a brute-force walk of the real tile order."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemmap import convseq, model, tileseq
from gemmap.arch import load_arch
from gemmap.conv import ORDER_DIMS, ConvMapping, ConvMappingBatch, ConvShape, conv_shape
from gemmap.convmodel import evaluate_conv, evaluate_conv_batch
from gemmap.convspace import ConvMapSpace, tile_masks
from gemmap.workload import Problem

FIRESIM = load_arch("arch/gemmini-firesim.yaml")


def test_walk_by_hand():
    # equal tiles: the first load, then max(E, L, S, (L + E + S + lat) / 2) a tile, then the last store
    assert tileseq.walk_cycles([10], [100], [5], 7) == 115
    # L=10, E=100, S=5, lat=7 twice: loads 10, 20 (slot 1 free); execute 110, 210; stores 115, 215
    assert tileseq.walk_cycles([10, 10], [100, 100], [5, 5], 7) == 215
    # a third tile waits for the first tile's slot (its store end 3 + latency 100) before loading
    assert tileseq.walk_cycles([1] * 3, [1] * 3, [1] * 3, 100) == 3 + 100 + 3
    # a long load behind a short execute is exposed (a reduction remainder alternating with full tiles)
    long_short = tileseq.walk_cycles([50, 5, 50, 5], [100, 10, 100, 10], [0, 5, 0, 5], 0)
    assert long_short == 50 + 100 + 10 + (50 - 10) + 100 + 10 + 5


def _table_fn(table: np.ndarray):
    """A tile function reading (load, execute, store) from ``table`` (g, d, 2, 2, 3) by each dim's
    (first, last) flags, summed over dims: every flag changes the tile."""

    def fn(first, last, which):
        d = first.shape[1]
        vals = table[which[:, None], np.arange(d)[None, :], first.astype(int), last.astype(int)]  # (t, d, 3)
        total = vals.sum(axis=1)
        return total[:, 0], total[:, 1], total[:, 2]

    return fn


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 2**31 - 1),
    latency=st.sampled_from([0.0, 3.0, 40.0]),
)
def test_fold_equals_walk(counts, seed, latency):
    rng = np.random.default_rng(seed)
    d = len(counts)
    g = 3
    n = np.tile(np.array(counts, dtype=np.int64), (g, 1))  # a group shares its loops; its tiles differ
    live = n[0] > 1
    order = rng.permutation(d)
    perm = np.tile(order[live[order]], (g, 1))
    table = rng.integers(0, 60, size=(g, d, 2, 2, 3)).astype(np.float64)
    fn = _table_fn(table)
    got = tileseq.nest_cycles(*tileseq.loops_of(n, perm), fn, latency)
    for i in range(g):
        seq = []
        for idx in itertools.product(*(range(n[i, x]) for x in order)):
            pos = dict(zip(order, idx))
            first = np.array([[pos[x] == 0 for x in range(d)]])
            last = np.array([[pos[x] == n[i, x] - 1 for x in range(d)]])
            seq.append(fn(first, last, np.array([i])))
        want = tileseq.walk_cycles(*([float(t[k][0]) for t in seq] for k in range(3)), latency)
        assert got[i] == pytest.approx(want, rel=1e-12)


def test_loops_need_two_iterations():
    with pytest.raises(ValueError):
        tileseq.nest_cycles(
            *tileseq.loops_of(np.array([[1, 3]]), np.array([[0, 1]])), _table_fn(np.zeros((1, 2, 2, 2, 3))), 0.0
        )


def test_loops_moving_together_walk_as_one():
    """Two dims in one loop: its first iteration has both first, its last both last, the others neither."""
    loops = np.array([[[True, True, False], [False, False, True]]])
    counts = np.array([[6, 4]])
    table = np.random.default_rng(1).integers(0, 50, size=(1, 3, 2, 2, 3)).astype(np.float64)
    fn = _table_fn(table)
    seq = []
    for outer in range(6):
        for inner in range(4):
            f0, l0 = outer == 0, outer == 5
            first = np.array([[f0, f0, inner == 0]])
            last = np.array([[l0, l0, inner == 3]])
            seq.append(fn(first, last, np.array([0])))
    want = tileseq.walk_cycles(*([float(t[k][0]) for t in seq] for k in range(3)), 9.0)
    assert tileseq.nest_cycles(loops, counts, fn, 9.0)[0] == pytest.approx(want, rel=1e-12)


def _matmul_mapping():
    from gemmap.mapping import Mapping

    return Mapping("ws", (32, 32, 32), (1, 1, 1), "MNK", "MNK", db_spad=True, db_acc=True)


def _conv(c=48, k=40, p=9, r=3, stride=1):
    shape = ConvShape(
        n=1, k=k, c=c, p=p, q=p, r=r, s=r, stride=stride, padding=r // 2, dilation=1, h=p * stride, w=p * stride
    )
    M, K, N = shape.gemm()
    return Problem("conv", M, K, N, op="conv", conv=shape)


def _walk_conv(arch, problem, m: ConvMapping) -> float:
    """The floor by brute force: every tile in the class representative's order, one at a time."""
    shape = conv_shape(problem, arch)
    T = np.array([m.tile])
    n = -(-np.array(shape.dims) // T)
    canon = ConvMapSpace(arch, problem).canonical(
        np.array([ConvMappingBatch.from_mappings([m]).order[0]]), tile_masks(n)
    )
    dims = ORDER_DIMS[canon[0]]
    fn = convseq._tile_fn(arch, problem, T, n)
    seq = []
    for idx in itertools.product(*(range(n[0, x]) for x in dims)):
        pos = dict(zip(dims.tolist(), idx))
        first = np.array([[pos[x] == 0 for x in range(7)]])
        last = np.array([[pos[x] == n[0, x] - 1 for x in range(7)]])
        seq.append(fn(first, last, np.array([0])))
    walk = tileseq.walk_cycles(*([float(t[k][0]) for t in seq] for k in range(3)), model.tile_latency(arch))
    return walk + (model.edge_cycles(arch, "ws") if model.pipelined(arch) else 0.0)


@pytest.mark.parametrize(
    "tile,order",
    [
        ((1, 4, 5, 16, 3, 3, 32), "bpqkrsc"),
        ((1, 9, 9, 16, 3, 3, 16), "bkpqcrs"),
        ((1, 2, 9, 40, 1, 3, 48), "bqpkcsr"),
        ((1, 5, 3, 32, 2, 3, 20), "kcbpqrs"),
    ],
)
def test_conv_floor_equals_walk(tile, order):
    problem = _conv()
    m = ConvMapping(tile=tile, order=order)
    got = convseq.sequence_floor(FIRESIM, problem, ConvMappingBatch.from_mappings([m]))[0]
    assert got == pytest.approx(_walk_conv(FIRESIM, problem, m), rel=1e-12)


def test_conv_tile_window_matches_rows_loaded():
    """First and last tiles' windows are conv.rows_loaded / cols_loaded, clipped to the image."""
    from gemmap.conv import cols_loaded, rows_loaded

    problem = _conv(p=10, r=3)
    shape = conv_shape(problem, FIRESIM)
    for p0, pe in ((0, 4), (8, 2)):
        got = convseq._lines(
            shape, True, np.array([p0]), np.array([pe]), np.array([0]), np.array([3]), np.array([False])
        )
        assert got[0] == rows_loaded(shape, p0, pe, 0, 3)
        got = convseq._lines(
            shape, False, np.array([p0]), np.array([pe]), np.array([0]), np.array([3]), np.array([False])
        )
        assert got[0] == cols_loaded(shape, p0, pe, 0, 3)


def test_remainder_alternation_costs_more_than_the_sum():
    """kchs 240 + 16 on 256 channels: the short tile cannot hide the next long tile's loads, so the
    floor lifts the summed core (the measured runs of this layer: docs/validation.md)."""
    problem = _conv(c=256, k=256, p=14, r=3)
    m = ConvMapping(tile=(1, 14, 14, 32, 3, 3, 240), order="bpqkrsc")
    off = dataclasses.replace(FIRESIM, software=dataclasses.replace(FIRESIM.software, tile_sequence=False))
    on_cost = evaluate_conv(FIRESIM, problem, m)
    off_cost = evaluate_conv(off, problem, m)
    assert on_cost.cycles > off_cost.cycles * 1.05


def test_floor_only_with_two_loops_and_batch_equals_scalar():
    problem = _conv(c=256, k=256, p=14, r=3)
    ms = [
        ConvMapping(tile=(1, 14, 14, 32, 3, 3, 240), order="bpqkrsc"),
        ConvMapping(tile=(1, 14, 14, 32, 3, 3, 240), order="bpqkrsc", db_spad=False),
        ConvMapping(tile=(1, 7, 14, 64, 3, 3, 64), order="kbpqcrs"),
    ]
    batch = ConvMappingBatch.from_mappings(ms)
    floor = convseq.sequence_floor(FIRESIM, problem, batch)
    assert floor[1] == 0 and floor[0] > 0 and floor[2] > 0
    costs = evaluate_conv_batch(FIRESIM, problem, batch)
    scalar = [evaluate_conv(FIRESIM, problem, m) for m in ms]
    assert [int(c) for c in costs.cycles] == [c.cycles for c in scalar]
    # the breakdown reports the floor, and the core (compute + exposed) is never below it
    assert [c.sequence_cycles for c in scalar] == list(floor)
    assert all(c.compute_cycles + c.exposed_transfer_cycles >= c.sequence_cycles for c in scalar)
    assert model.evaluate(FIRESIM, Problem("mm", 64, 64, 64), _matmul_mapping()).sequence_cycles == 0.0


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_best_of_a_batch_costs_the_floor_only_where_it_can_win(objective):
    """conv_search._best bounds with the model without the floor: its answer is the full scan's."""
    from gemmap.search.conv_search import _best

    problem = _conv(c=64, k=48, p=10, r=3)
    batch = ConvMapSpace(FIRESIM, problem).sample(3000, seed=4)
    values = np.asarray(evaluate_conv_batch(FIRESIM, problem, batch).metric(objective), dtype=np.float64)
    i, v = _best(FIRESIM, problem, batch, objective)
    assert v == values.min() and values[i] == v


def test_mappings_tiled_in_more_than_five_dims_have_no_floor():
    problem = _conv(c=48, k=40, p=9, r=3)
    fine = ConvMapping(tile=(1, 4, 4, 16, 1, 1, 16), order="bpqkrsc")  # p, q, k, r, s, c tiled: six dims
    coarse = ConvMapping(tile=(1, 4, 4, 16, 3, 3, 16), order="bpqkrsc")  # four
    floor = convseq.sequence_floor(FIRESIM, problem, ConvMappingBatch.from_mappings([fine, coarse]))
    assert convseq.MAX_TILED_DIMS == 5
    assert floor[0] == 0 and floor[1] > 0
