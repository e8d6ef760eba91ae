"""The mapspace: counted size = enumerated size = brute force, pruning, uniform sampling, emptiness."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.stats import chisquare

from gemmap.arch import L2, ceil_div
from gemmap.errors import GemmapError
from gemmap.mapping import ORDER_INDEX, ORDERS, Mapping, MappingBatch, valid_mask
from gemmap.mapspace import MapSpace, candidates, canonical_order, tile_candidates
from gemmap.model import FILL_LEVEL, evaluate, level_masks
from gemmap.search import SearchOptions, find_mapping
from gemmap.workload import Problem


def small_arch(base, l2_kib=None, dataflow="both"):
    """A 4x4 array with 1 KiB SRAMs (and optionally a tiny L2), so spaces stay enumerable."""
    arch = dataclasses.replace(
        base,
        pe_array=dataclasses.replace(base.pe_array, rows=4, cols=4, dataflow=dataflow),
        scratchpad=dataclasses.replace(base.scratchpad, kib=1),
        accumulator=dataclasses.replace(base.accumulator, kib=1),
        l2=L2(kib=l2_kib) if l2_kib else None,
    )
    return arch


def keys(batch: MappingBatch) -> np.ndarray:
    """One row of ints per mapping (for set comparisons)."""
    return np.column_stack(
        [batch.dataflow, batch.local, batch.l2_factors, batch.dram_order, batch.l2_order, batch.db_spad, batch.db_acc]
    ).astype(np.int64)


def brute_force(arch, p, full_rows):
    """Every valid canonical mapping by walking the product of all choices."""
    D = p.shape_key()
    out = set()
    dims = (arch.dim_rows, arch.dim_rows, arch.dim_cols)
    tiles = [tile_candidates(d, w).tolist() for d, w in zip(D, dims, strict=True)]
    for df, T in itertools.product(arch.dataflows, itertools.product(*tiles)):
        if full_rows and T[2] != D[2]:
            continue
        n1 = [ceil_div(d, t) for d, t in zip(D, T)]
        for f in itertools.product(*[candidates(n).tolist() for n in n1]) if arch.l2 else [(1, 1, 1)]:
            n2 = [ceil_div(a, b) for a, b in zip(n1, f)]
            md = sum(1 << j for j in range(3) if n2[j] > 1)
            ml = sum(1 << j for j in range(3) if f[j] > 1) if arch.l2 else 0
            for od, ol in itertools.product(range(6), range(6) if arch.l2 else [ORDER_INDEX["MNK"]]):
                if canonical_order(od, md) != od or canonical_order(ol, ml) != ol:
                    continue
                for s, a in itertools.product([False, True], repeat=2):
                    m = Mapping(df, T, f, ORDERS[od], ORDERS[ol], s, a)
                    if not valid_mask(arch, p, MappingBatch.from_mappings([m]))[0]:
                        continue
                    if full_rows:
                        c = next(t for t in evaluate(arch, p, m).traffic if t.tensor == "C" and t.level == "local")
                        if c.visits != D[0] * D[2]:
                            continue
                    out.add((0 if df == "ws" else 1, *T, *f, od, ol, int(s), int(a)))
    return out


def enumerated(space):
    return np.concatenate([keys(b) for b in space.enumerate(batch_size=777)])


@pytest.mark.parametrize("full_rows", [False, True])
@pytest.mark.parametrize(
    "shape,l2",
    [((7, 5, 13), None), ((12, 9, 8), None), ((1, 11, 6), None), ((1, 11, 6), 1), ((5, 4, 3), 1), ((3, 2, 7), 1)],
)
def test_counted_equals_enumerated_equals_brute_force(gemmini, shape, l2, full_rows):
    arch = small_arch(gemmini, l2)
    p = Problem("t", *shape)
    space = MapSpace(arch, p, full_rows)
    rows = enumerated(space)
    assert space.size().total == len(rows) == len({tuple(r) for r in rows})
    assert {tuple(r) for r in rows} == brute_force(arch, p, full_rows)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("shape,l2", [((31, 17, 23), None), ((64, 37, 29), None), ((5, 97, 3), None), ((11, 7, 5), 1)])
def test_counted_equals_enumerated_larger(gemmini, shape, l2, dataflow):
    """Bigger spaces (primes, odd sizes, one dataflow at a time): count = enumeration, all valid,
    all canonical, no duplicates."""
    for arch in (small_arch(gemmini, l2, dataflow),):
        p = Problem("t", *shape)
        space = MapSpace(arch, p)
        batches = list(space.enumerate())
        b = MappingBatch.concat(batches)
        assert space.size().total == len(b) == len(np.unique(keys(b), axis=0))
        assert valid_mask(arch, p, b).all()
        D = np.array(shape)
        n1 = -(-D // b.local)
        md = level_masks(-(-n1 // np.minimum(b.l2_factors, n1)))
        ml = level_masks(b.l2_factors)
        canon_d = np.array([canonical_order(int(o), int(m)) for o, m in zip(b.dram_order, md)])
        canon_l = np.array([canonical_order(int(o), int(m)) for o, m in zip(b.l2_order, ml)])
        assert (canon_d == b.dram_order).all() and (canon_l == b.l2_order).all()


def test_full_rows_space_keeps_reduction_in_accumulator(gemmini, transformer_arch):
    p = Problem("t", 64, 48, 40)
    for arch in (gemmini, transformer_arch):
        b = MapSpace(arch, p, full_rows=True).sample(2000, seed=1)
        assert (b.local[:, 2] == 40).all()
        for i in range(0, 2000, 97):
            c = next(t for t in evaluate(arch, p, b[i]).traffic if t.tensor == "C" and t.level == "local")
            assert c.visits == 64 * 40


def _uniform_check(space, draws_per_point=60):
    rows = enumerated(space)
    index = {tuple(r): i for i, r in enumerate(rows)}
    n = draws_per_point * len(rows)
    s = keys(space.sample(n, seed=11))
    hits = np.bincount([index[tuple(r)] for r in s], minlength=len(rows))
    assert (hits > 0).all()
    assert chisquare(hits).pvalue > 1e-4


def test_sampler_is_uniform_without_l2(gemmini):
    _uniform_check(MapSpace(small_arch(gemmini), Problem("t", 5, 3, 7)))


def test_sampler_is_uniform_with_l2(gemmini):
    space = MapSpace(small_arch(gemmini, 1), Problem("t", 1, 7, 6))
    assert 200 < space.size().total < 3000
    _uniform_check(space, 40)


def test_sampler_is_uniform_full_rows_with_l2(gemmini):
    _uniform_check(MapSpace(small_arch(gemmini, 1), Problem("t", 9, 7, 6), full_rows=True))


def test_same_seed_same_samples(transformer_arch):
    space = MapSpace(transformer_arch, Problem("t", 300, 200, 100))
    a, b, c = space.sample(5000, 3), space.sample(5000, 3), space.sample(5000, 4)
    assert (keys(a) == keys(b)).all() and not (keys(a) == keys(c)).all()
    assert valid_mask(transformer_arch, space.problem, a).all()


def test_canonical_order_of_trivial_level_is_mnk():
    assert ORDERS[canonical_order(ORDER_INDEX["KNM"], 0)] == "MNK"
    # only M and K non-trivial: K before M → the first such order in M < N < K is NKM
    assert ORDERS[canonical_order(ORDER_INDEX["KMN"], 0b011)] == "NKM"


def test_size_breakdown(gemmini):
    s = MapSpace(small_arch(gemmini), Problem("t", 7, 5, 13)).size()
    assert s.dataflows == 2 and s.tile_candidates == (5, 5, 8) and s.tiles == s.tilings
    assert s.total % 2 == 0


def test_why_empty_names_the_memory(gemmini):
    arch = small_arch(gemmini)
    p = Problem("wide", 8, 8, 300)
    space = MapSpace(arch, p, full_rows=True)
    assert space.size().total == 0
    reason = space.why_empty()
    assert "accumulator of 1 KiB" in reason and "300-wide" in reason and "Tm=1" in reason
    assert MapSpace(arch, p).why_empty() is None
    for method in ("optimal", "random", "exhaustive"):
        with pytest.raises(GemmapError, match="no valid mapping"):
            find_mapping(arch, p, SearchOptions(method=method), full_rows=True)


def test_fill_level_table_is_consistent_with_pruning():
    """Orders in one class give the same fills (pruning loses no distinct mapping)."""
    for od, ol, md, ml in itertools.product(range(6), range(6), range(8), range(8)):
        cd, cl = canonical_order(od, md), canonical_order(ol, ml)
        assert (FILL_LEVEL[:, od, ol, md, ml] == FILL_LEVEL[:, cd, cl, md, ml]).all()


def test_acc_overlap_space_is_the_double_buffered_part(gemmini, transformer_arch):
    """``acc_overlap`` keeps exactly the mappings whose accumulator is double-buffered: counted,
    enumerated and sampled alike, and the optimal search agrees with the exhaustive one on it."""
    from gemmap.search import SearchOptions, find_mapping

    p = Problem("t", 40, 24, 36)
    for arch, fr in ((gemmini, False), (gemmini, True), (transformer_arch.with_overrides(acc_kib=16), True)):
        full, over = MapSpace(arch, p, fr), MapSpace(arch, p, fr, acc_overlap=True)
        rows = enumerated(full)
        kept = enumerated(over)
        assert over.size().total == len(kept) > 0
        assert {tuple(r) for r in kept} == {tuple(r) for r in rows if r[-1] == 1}  # db_acc is the last key
        assert over.sample(200, seed=3).db_acc.all()
        for objective in ("latency", "edp"):
            a = find_mapping(
                arch, p, SearchOptions(method="optimal", objective=objective), full_rows=fr, acc_overlap=True
            )
            b = find_mapping(
                arch, p, SearchOptions(method="exhaustive", objective=objective), full_rows=fr, acc_overlap=True
            )
            assert a.mapping.db_acc and a.proven_optimal
            value = {"latency": lambda c: c.cycles, "edp": lambda c: c.edp}[objective]
            assert value(a.cost) == pytest.approx(value(b.cost), rel=1e-12)


def test_candidates_are_every_distinct_ceil_quotient():
    """candidates(D) = the distinct ceil(D/n), n = 1..D, found in O(√D) (huge sizes stay cheap)."""
    for size in [*range(1, 600), 4096, 11008, 12288, 49152, 65536, 99991, 10**6 + 1]:
        ref = np.unique(-(-size // np.arange(1, size + 1, dtype=np.int64)))
        assert np.array_equal(candidates(size), ref), size
    big = candidates(10**12)
    assert big[0] == 1 and big[-1] == 10**12 and len(big) < 2_000_001 and np.all(np.diff(big) > 0)
