"""The conv mapspace: counted = enumerated = brute force, the order pruning proven, uniform sampling."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import tracemalloc

import numpy as np
import pytest
from scipy.stats import chisquare

from gemmap import convmodel
from gemmap.arch import L2, ceil_div
from gemmap.conv import DIMS, GEMMINI_ORDER, ORDERS, RELEVANT, ConvMapping, ConvMappingBatch, ConvShape, valid_mask
from gemmap.convspace import ConvMapSpace, class_table, tile_masks
from gemmap.errors import GemmapError
from gemmap.mapspace import candidates, tile_candidates
from gemmap.workload import Problem
from tests.test_mapspace import small_arch


def conv_problem(shape: ConvShape, name: str = "t") -> Problem:
    shape.check(name)
    return Problem(name, *shape.gemm(), op="conv", conv=shape)


SMALL = [
    ConvShape(n=1, k=5, c=3, p=4, q=3, r=3, s=3, stride=1, padding=1),
    ConvShape(n=2, k=6, c=5, p=3, q=3, r=1, s=1, stride=2, padding=0, h=6, w=6),  # downsample
    ConvShape(n=1, k=9, c=2, p=3, q=2, r=2, s=2, stride=2, padding=1, dilation=2),
    # even kernel, padding R // 2 (out_dim P + 1, as DOSA's templates run it): split kernel windows at
    # the edges lie wholly in the padding, so LoopConv's loader wraps (conv_ring.py) or never ends
    ConvShape(n=1, k=4, c=3, p=5, q=5, r=4, s=4, stride=1, padding=2, h=4, w=4),
]


def residency(arch):
    return dataclasses.replace(arch, software=dataclasses.replace(arch.software, reload_operands=False))


def arches(gemmini):
    """Gemmini's reloads; Timeloop residency; reloads with a tiny L2 (residency above it)."""
    base = small_arch(gemmini)
    return {"reload": base, "residency": residency(base), "l2": dataclasses.replace(base, l2=L2(kib=1))}


def keys(b: ConvMappingBatch) -> set[tuple[int, ...]]:
    rows = np.column_stack([b.tile, b.order, b.db_spad, b.db_acc]).astype(np.int64)
    return {tuple(int(x) for x in r) for r in rows}


@functools.cache
def _reps(mask: int, all_tensors: bool) -> tuple[int, ...]:
    """Class representatives by an independent scalar walk: per tensor, the non-trivial loops not
    indexing it above its innermost non-trivial relevant loop; the first order of each signature."""
    tensors = ("C", "A", "B") if all_tensors else ("C",)
    seen: dict[tuple[frozenset[str], ...], int] = {}
    for i, order in enumerate(ORDERS):
        live = [ch for ch in order if mask >> DIMS.index(ch) & 1]
        sig = []
        for x in tensors:
            rel = [RELEVANT[x][DIMS.index(ch)] for ch in live]
            inner = max((j for j, r in enumerate(rel) if r), default=-1)
            sig.append(frozenset(ch for j, ch in enumerate(live[: inner + 1]) if not rel[j]))
        seen.setdefault(tuple(sig), i)
    return tuple(sorted(seen.values()))


def brute_force(arch, p: Problem) -> set[tuple[int, ...]]:
    shape = p.conv
    cands = [
        tile_candidates(d, arch.dim_rows).tolist() if name in "kc" else candidates(d).tolist()
        for name, d in zip(DIMS, shape.dims)
    ]
    all_tensors = not arch.software.reload_operands or arch.l2 is not None
    out = set()
    for T in itertools.product(*cands):
        mask = sum(1 << j for j, (d, t) in enumerate(zip(shape.dims, T)) if ceil_div(d, t) > 1)
        for s, a in itertools.product((False, True), repeat=2):
            m = ConvMapping(tile=T, db_spad=s, db_acc=a)
            if not valid_mask(arch, p, ConvMappingBatch.from_mappings([m]))[0]:
                continue
            out |= {(*T, o, int(s), int(a)) for o in _reps(mask, all_tensors)}
    return out


@pytest.mark.parametrize("shape", SMALL, ids=range(len(SMALL)))
@pytest.mark.parametrize("which", ["reload", "residency", "l2"])
def test_counted_equals_enumerated_equals_brute_force(gemmini, shape, which):
    arch = arches(gemmini)[which]
    p = conv_problem(shape)
    space = ConvMapSpace(arch, p)
    batches = list(space.enumerate(batch_size=997))
    rows = ConvMappingBatch(
        *(np.concatenate([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(ConvMappingBatch))
    )
    assert space.size().total == len(rows) == len(keys(rows))
    assert valid_mask(arch, p, rows).all()
    assert keys(rows) == brute_force(arch, p)


def test_enumerate_expands_a_chunk_a_batch_at_a_time(firesim_arch):
    # ResNet's 3x3 conv on the FireSim arch: its first chunk of tiles expands to 51 M mappings (every
    # order class of every tile), so enumerate must expand it a slice of tiles at a time: the first batch
    # comes at once, and the batches are the chunk's mappings in space order, each exactly batch_size
    p = conv_problem(ConvShape(n=1, k=128, c=128, p=56, q=56, r=3, s=3, stride=1, padding=1))
    space = ConvMapSpace(firesim_arch, p)
    chunk = next(c for c in space.chunks() if c.weight.any())
    assert chunk.weight.sum() > 50_000_000
    first = space.expand(chunk, np.arange(40))  # the chunk's first 40 tiles, in space order
    got = space.enumerate(batch_size=256)
    tracemalloc.start()
    batches = [next(got) for _ in range(-(-len(first) // 256) - 1)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20  # bounded memory: the whole chunk would take gigabytes
    assert all(len(b) == 256 for b in batches)
    for f in dataclasses.fields(ConvMappingBatch):
        joined = np.concatenate([getattr(b, f.name) for b in batches])
        assert (joined == getattr(first, f.name)[: len(joined)]).all()


def test_pruning_loses_no_cost(gemmini, transformer_arch):
    """Every one of the 5040 orders costs exactly what its class representative costs, on tiles
    covering many masks, under reloads, residency and an L2."""
    shape = ConvShape(n=2, k=20, c=19, p=5, q=7, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    rng = np.random.default_rng(4)
    for arch in (gemmini, residency(gemmini), transformer_arch):
        space = ConvMapSpace(arch, p)
        tiles = [tuple(int(rng.integers(1, d + 1)) for d in shape.dims) for _ in range(6)] + [(1,) * 7]
        for T in tiles:
            n = len(ORDERS)
            b = ConvMappingBatch(
                np.tile(np.array(T), (n, 1)),
                np.arange(n),
                np.zeros(n, dtype=np.int8),
                np.ones(n, bool),
                np.ones(n, bool),
            )
            mask = tile_masks(-(-np.array(shape.dims) // np.array([T])))[0]
            canon = space.canonical(np.arange(n), np.full(n, mask))
            cost = convmodel.evaluate_conv_batch(arch, p, b)
            for metric in ("latency", "energy"):
                v = np.asarray(cost.metric(metric))
                assert (v == v[canon]).all(), (T, metric)
            reps = np.unique(canon)
            assert reps[0] == 0 and ORDERS[0] == GEMMINI_ORDER  # Gemmini's order always represents its class
            assert len(reps) == class_table(space.all_tensors)[1][mask]


def test_class_counts_under_reloads():
    """Without an L2 and with reloads only partial-sum spills count: 2^(non-trivial reductions)
    classes when some output loop is non-trivial, else one."""
    _, ncls, _ = class_table(False)
    for mask in range(128):
        outputs = mask & 0b0001111
        reductions = bin(mask & 0b1110000).count("1")
        assert ncls[mask] == (2**reductions if outputs else 1)


def _uniform_check(space, draws_per_point):
    rows = list(itertools.chain.from_iterable(sorted(keys(b)) for b in space.enumerate()))
    index = {r: i for i, r in enumerate(rows)}
    s = space.sample(draws_per_point * len(rows), seed=11)
    tile = np.column_stack([s.tile, s.order, s.db_spad, s.db_acc]).astype(np.int64)
    hits = np.bincount([index[tuple(int(x) for x in r)] for r in tile], minlength=len(rows))
    assert (hits > 0).all()
    assert chisquare(hits).pvalue > 1e-4


@pytest.mark.parametrize("which", ["reload", "l2"])
def test_sampler_is_uniform(gemmini, which):
    arch = arches(gemmini)[which]
    space = ConvMapSpace(arch, conv_problem(ConvShape(n=1, k=5, c=2, p=3, q=2, r=2, s=2, stride=1, padding=1)))
    assert 200 < space.size().total < 5000
    _uniform_check(space, 25)


def test_sampler_spans_chunks(gemmini, monkeypatch):
    """With tiny chunks (many per space) the decode across chunk boundaries is still uniform."""
    from gemmap import convspace

    monkeypatch.setattr(convspace, "CHUNK", 7)
    space = ConvMapSpace(small_arch(gemmini), conv_problem(ConvShape(n=1, k=5, c=2, p=3, q=2, r=2, s=2, padding=1)))
    _uniform_check(space, 30)


def test_same_seed_same_samples(gemmini):
    p = conv_problem(ConvShape(n=1, k=64, c=64, p=28, q=28, r=3, s=3, padding=1))
    space = ConvMapSpace(gemmini, p)
    a, b, c = space.sample(4000, 3), space.sample(4000, 3), space.sample(4000, 4)
    assert keys(a) == keys(b) and keys(a) != keys(c)
    assert (a.tile == b.tile).all() and (a.order == b.order).all()
    assert valid_mask(gemmini, p, a).all()


def test_why_empty(gemmini):
    p = conv_problem(ConvShape(n=1, k=8, c=8, p=4, q=4, r=3, s=3, padding=1))
    assert ConvMapSpace(gemmini, p).why_empty() is None
    os_only = gemmini.with_overrides(dataflow="os")
    reason = ConvMapSpace(os_only, p).why_empty()
    assert reason is not None and "no WS dataflow" in reason and "no valid mapping" in reason
    rect = conv_problem(ConvShape(n=1, k=8, c=8, p=4, q=2, r=3, s=1, padding=0))
    with pytest.raises(GemmapError, match="square kernels"):
        ConvMapSpace(gemmini, rect).sample(10)


def _merged_by_coarser_classes(
    arch, shape: ConvShape, tiles, coarser: tuple[bool, ...], key: tuple[bool, ...] = (True, True, True)
) -> int:
    """Every order of every tile in ``tiles`` costs what its class representative costs (asserted); how
    many orders the ``coarser`` class key would merge with a representative of another cost."""
    p = conv_problem(shape)
    space = ConvMapSpace(arch, p)
    assert space.class_key == key
    n = len(ORDERS)
    merged = 0
    for T in tiles:
        b = ConvMappingBatch(np.tile(np.array(T), (n, 1)), np.arange(n), np.zeros(n, dtype=np.int8),
                             np.ones(n, bool), np.ones(n, bool))  # fmt: skip
        mask = tile_masks(-(-np.array(shape.dims) // np.array([T])))[0]
        canon = space.canonical(np.arange(n), np.full(n, mask))
        v = np.asarray(convmodel.evaluate_conv_batch(arch, p, b).metric("latency"))
        assert (v == v[canon]).all(), T
        merged += int((v != v[class_table(*coarser)[2][mask, np.arange(n)]]).sum())
    return merged


def test_pruning_loses_no_cost_with_output_refetches(firesim_arch):
    """Under a write-allocating cache L2 the output-line re-fetches depend on the loops inside the output-channel
    loop (convmodel.refetch_store_floor): every order still costs what its class representative costs, while the
    classes without that key (Timeloop traffic signatures only) would merge orders that cost differently."""
    arch = dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, kib=8, ways=4))
    shape = ConvShape(n=1, k=128, c=8, p=6, q=6, r=3, s=3, stride=1, padding=1)
    tiles = ((1, 2, 6, 16, 3, 3, 4), (1, 3, 6, 16, 3, 3, 4), (1, 1, 6, 16, 3, 3, 8), (1, 3, 6, 16, 1, 3, 8))
    # e.g. "kpc" and "pkc" share a traffic signature but not their re-fetches
    assert _merged_by_coarser_classes(arch, shape, tiles, (True, False))


def test_pruning_loses_no_cost_with_memory_side_cache_reloads(firesim_arch):
    """Behind a memory-side cache the reloads that miss it depend on the loops inside the loop re-walking
    the input or the weights (convmodel.cache_reload_cycles): every order still costs what its class
    representative costs, while classes without that key would merge orders that cost differently."""
    l2 = dataclasses.replace(firesim_arch.l2, kib=8, ways=4)
    # a 64 KiB cache, memory at 1 B/cycle: the passes between reloads straddle its capacity, the floor binds
    dram = dataclasses.replace(
        firesim_arch.dram, cache_kib=64, cache_ways=4, bytes_per_cycle=1.0, miss_bytes_per_cycle=0.25
    )
    arch = dataclasses.replace(firesim_arch, l2=l2, dram=dram)
    shape = ConvShape(n=1, k=128, c=64, p=12, q=12, r=3, s=3, stride=1, padding=1)
    tiles = ((1, 4, 12, 16, 3, 3, 16), (1, 6, 6, 32, 3, 3, 16), (1, 3, 12, 64, 1, 3, 32), (1, 2, 2, 16, 3, 3, 8))
    assert _merged_by_coarser_classes(arch, shape, tiles, (True, True))


def test_pruning_loses_no_cost_with_cache_reloads_and_no_l2(firesim_arch):
    """Without an L2, Gemmini's per-call reloads make the input's and weights' fills order-free, but what
    their reloads miss in a memory-side cache still depends on the loops inside the loop re-walking them."""
    dram = dataclasses.replace(
        firesim_arch.dram, cache_kib=64, cache_ways=4, bytes_per_cycle=1.0, miss_bytes_per_cycle=0.25
    )
    arch = dataclasses.replace(firesim_arch, l2=None, dram=dram)
    shape = ConvShape(n=4, k=64, c=64, p=16, q=16, r=3, s=3, stride=1, padding=1)
    tiles = ((1, 4, 16, 64, 3, 3, 16), (2, 8, 8, 32, 3, 3, 32), (1, 2, 16, 16, 3, 1, 64), (4, 4, 4, 64, 1, 3, 8))
    assert _merged_by_coarser_classes(arch, shape, tiles, (False, False), key=(False, False, True))
