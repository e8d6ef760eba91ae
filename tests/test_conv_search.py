"""Conv searches: optimal = exhaustive, optimal ≤ heuristic and random, conv-keyed caches, the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from gemmap.cache import SearchStore, SharedSearchCache, StoredResult
from gemmap.conv import ConvMapping, ConvShape
from gemmap.convmodel import evaluate_conv_batch
from gemmap.convspace import ConvMapSpace
from gemmap.errors import GemmapError
from gemmap.mapper import SearchCache
from gemmap.mapspace import DB_CHOICES
from gemmap.search import OBJECTIVES, SearchOptions, find_mapping, objective_value
from gemmap.search.conv_search import bounds
from gemmap.workload import Problem, load_workload
from tests.conftest import ROOT
from tests.test_cli import gemmap
from tests.test_convspace import SMALL, arches, conv_problem


def _value(r):
    return objective_value(r.cost, r.objective)


@pytest.mark.parametrize("shape", SMALL, ids=range(len(SMALL)))
@pytest.mark.parametrize("which", ["reload", "residency", "l2"])
def test_optimal_equals_exhaustive(gemmini, shape, which):
    arch = arches(gemmini)[which]
    p = conv_problem(shape)
    for objective in OBJECTIVES:
        ex = find_mapping(arch, p, SearchOptions(method="exhaustive", objective=objective))
        opt = find_mapping(arch, p, SearchOptions(method="optimal", objective=objective))
        assert opt.proven_optimal and ex.proven_optimal and isinstance(opt.mapping, ConvMapping)
        assert _value(opt) == pytest.approx(_value(ex), rel=1e-12), (which, objective)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_optimal_at_most_heuristic_and_random(gemmini, transformer_arch, objective):
    p = conv_problem(ConvShape(n=1, k=96, c=48, p=20, q=20, r=3, s=3, stride=1, padding=1))
    for arch in (gemmini, transformer_arch):
        opt = find_mapping(arch, p, SearchOptions(objective=objective))
        rnd = find_mapping(arch, p, SearchOptions(method="random", objective=objective, samples=2000, seed=5))
        heu = find_mapping(arch, p, SearchOptions(method="heuristic", objective=objective))
        assert opt.proven_optimal and not rnd.proven_optimal and rnd.evaluated == 2000
        assert _value(opt) <= _value(rnd) * (1 + 1e-12) and _value(opt) <= _value(heu) * (1 + 1e-12)
        assert heu.mapping.order == "bpqkrsc" and heu.method == "heuristic"


def test_bounds_are_below_every_order(gemmini, transformer_arch, firesim_arch):
    """The per-(tile, buffering) bound is ≤ the cost of every order class (and equal to the best
    one under Gemmini's reloads without an L2 and without the order's own tile sequence); also with
    weight tiles a cache's sets cannot hold."""
    small = conv_problem(ConvShape(n=2, k=20, c=19, p=5, q=7, r=3, s=3, stride=1, padding=1))
    spill = conv_problem(ConvShape(n=1, k=1024, c=64, p=3, q=3, r=3, s=3, stride=1, padding=1))
    flat = dataclasses.replace(gemmini, software=dataclasses.replace(gemmini.software, tile_sequence=False))
    cases = (
        (flat, True, small),
        (gemmini, False, small),
        (transformer_arch, False, small),
        (firesim_arch, False, spill),
    )
    for arch, exact, p in cases:
        space = ConvMapSpace(arch, p)
        for batch in space.enumerate(batch_size=1 << 14):
            v = np.asarray(evaluate_conv_batch(arch, p, batch).metric("edp"))
            lb = bounds(space, batch.tile, "edp")
            db = np.array([DB_CHOICES.index((bool(s), bool(a))) for s, a in zip(batch.db_spad, batch.db_acc)])
            mine = lb[np.arange(len(db)), db]
            assert (mine <= v).all()
            if exact:
                gem = batch.order == 0
                assert (mine[gem] == v[gem]).all()
            break


def test_time_limit_returns_best_so_far(gemmini):
    p = load_workload(ROOT / "workloads" / "resnet50.yaml").problem("res2_3x3")
    r = find_mapping(gemmini, p, SearchOptions(time_limit=1e-6))
    assert not r.proven_optimal and r.cost.cycles > 0


def test_refusals(gemmini):
    p = conv_problem(ConvShape(n=1, k=64, c=64, p=28, q=28, r=3, s=3, padding=1))
    with pytest.raises(GemmapError, match="exhaustive limit"):
        find_mapping(gemmini, p, SearchOptions(method="exhaustive", max_exhaustive=1000))
    with pytest.raises(GemmapError, match="not modelled"):
        find_mapping(gemmini, p, SearchOptions(), full_rows=True)
    with pytest.raises(GemmapError, match="WS"):
        find_mapping(gemmini, p, SearchOptions(dataflow="os"))


def test_two_convs_with_one_gemm_view_are_searched_apart(gemmini):
    """A 3x3 conv on 8 channels and a 1x1 conv on 72 share the im2col view (M, K, N); the caches
    key on the whole conv shape."""
    a = conv_problem(ConvShape(n=1, k=32, c=8, p=12, q=12, r=3, s=3, padding=1), "a")
    b = conv_problem(ConvShape(n=1, k=32, c=72, p=12, q=12, r=1, s=1), "b")
    assert a.shape_key() == b.shape_key() and a.key() != b.key()
    cache = SearchCache(gemmini, SearchOptions(method="heuristic"))
    ra, rb = cache.get(a), cache.get(b)
    assert ra.mapping != rb.mapping and ra.cost != rb.cost
    for p in (a, b):
        assert Problem.from_key(p.key()).conv == p.conv


def test_stored_conv_result_round_trips(gemmini, tmp_path):
    p = conv_problem(ConvShape(n=1, k=32, c=8, p=12, q=12, r=3, s=3, stride=2, padding=1, h=24, w=24))
    options = SearchOptions(method="heuristic")
    result = find_mapping(gemmini, p, options)
    store = SearchStore(tmp_path / "c.sqlite")
    assert store.store("k", [StoredResult.of(p.key(), False, result)]) == 1
    (stored,) = store.lookup("k", [p.key()])
    back = stored.restore(gemmini, options)
    assert back.mapping == result.mapping and back.cost == result.cost
    cache = SharedSearchCache(gemmini, options)
    cache.seed([stored])
    assert cache.get(dataclasses.replace(p, name="other")).cost == result.cost


SMALL_CNN = """name: smallcnn
ops:
  - {name: c1, op: conv, C: 3, K: 16, P: 16, Q: 16, R: 3, S: 3, stride: 2, padding: 1, H: 32, W: 32}
  - {name: c2, op: conv, C: 16, K: 32, P: 16, Q: 16, R: 1, S: 1}
  - {name: c3, op: conv, C: 16, K: 32, P: 16, Q: 16, R: 1, S: 1, repeat: 2}
  - {name: fc, op: matmul, M: 1, K: 512, N: 10}
"""


def test_cli_map_conv_workload(tmp_path):
    w = tmp_path / "cnn.yaml"
    w.write_text(SMALL_CNN)
    out, csv_path = tmp_path / "m.json", tmp_path / "m.csv"
    r = gemmap("map", str(w), "--explain", "c1", "--json", str(out), "--csv", str(csv_path))
    assert r.returncode == 0, r.stderr
    assert "tiled_conv(batches=1, porows=" in r.stdout and "== c1" in r.stdout
    layers = {x["name"]: x for x in json.loads(out.read_text())["layers"]}
    c1 = layers["c1"]
    assert c1["dims"] == {"B": 1, "K": 16, "C": 3, "P": 16, "Q": 16, "R": 3, "S": 3, "stride": 2, "padding": 1,
                          "dilation": 1, "H": 32, "W": 32}  # fmt: skip
    assert c1["gemm_dims"] == {"M": 256, "K": 27, "N": 16}
    assert c1["mapping"]["kind"] == "conv" and set(c1["mapping"]["tiled_conv_args"]) == {
        "batches", "porows", "pocols", "pochs", "krows", "kcols", "kchs"}  # fmt: skip
    assert all(x["search"]["proven_optimal"] for x in layers.values())
    assert layers["c2"]["cycles"] == layers["c3"]["cycles"] and layers["fc"]["dims"] == {"M": 1, "K": 512, "N": 10}
    text = csv_path.read_text()
    assert text.startswith("name,op,M,K,N,conv,") and "B=1 K=16 C=3 P=16 Q=16 R=3 S=3 stride=2 padding=1" in text
    r = gemmap("map", str(w), "--search", "heuristic", "--explain")
    assert r.returncode == 0, r.stderr
    assert "bpqkrsc" in r.stdout and "== c2" in r.stdout and "tile_I=" in r.stdout


def test_resnet50_conv1_lower_bound_is_on_the_real_tensors(gemmini):
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    r = find_mapping(gemmini, w.problem("conv1"), SearchOptions(method="heuristic"))
    assert r.cost.dram_bytes_lower_bound == 962_752  # ≈ 0.96 MB, not the im2col 2.66 MB


def test_gemmini_tiler_mapping_is_in_the_space(gemmini, transformer_arch):
    """tiled_conv_auto's tile is a candidate of every dim, so the proven optimum is never worse than
    Gemmini's tiler (by construction, not by luck): checked on every ResNet-50 conv."""
    from gemmap.conv_tiler import tiled_conv_auto

    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    for arch in (gemmini, transformer_arch):
        for p in w.problems:
            if p.conv is None:
                continue
            space = ConvMapSpace(arch, p)
            auto = tiled_conv_auto(arch, p)
            assert all(t in c for t, c in zip(auto.tile, space.cands)), p.name


def test_optimal_with_cache_sets_is_proven_and_beats_random(firesim_arch):
    # Weight tiles the FireSim L2's sets cannot hold (K = 1024: 16-byte rows reach 64 sets) cost a line per row;
    # the search's bounds stay below every order, so its optimum is still proven and no random mapping beats it.
    p = conv_problem(ConvShape(n=1, k=1024, c=64, p=6, q=6, r=3, s=3, stride=1, padding=1))
    opt = find_mapping(firesim_arch, p, SearchOptions(objective="latency"))
    rnd = find_mapping(firesim_arch, p, SearchOptions(method="random", objective="latency", samples=3000, seed=2))
    assert opt.proven_optimal
    assert opt.cost.cycles <= rnd.cost.cycles


def tiny_cache(arch):
    """The FireSim arch with a 1 KiB, 2-way L2 (8 sets of 64-byte lines), so that small convs re-fetch output lines."""
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, kib=1, ways=2))


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_optimal_equals_exhaustive_with_output_refetches(firesim_arch, objective):
    # The order classes of a write-allocating cache also key the loops inside the output-channel loop, so the
    # pruned space still holds an order of every cost and the optimum is proven.
    from gemmap.convmodel import refetch_store_floor

    arch = tiny_cache(firesim_arch)
    p = conv_problem(ConvShape(n=1, k=128, c=4, p=4, q=4, r=1, s=1, stride=1, padding=0))
    ex = find_mapping(arch, p, SearchOptions(method="exhaustive", objective=objective))
    opt = find_mapping(arch, p, SearchOptions(method="optimal", objective=objective))
    assert opt.proven_optimal and ex.proven_optimal
    assert _value(opt) == pytest.approx(_value(ex), rel=1e-12)
    space = ConvMapSpace(arch, p)
    some = next(space.enumerate(batch_size=1 << 14))
    n = -(-np.array(p.conv.dims) // some.tile)
    assert (refetch_store_floor(arch, p.conv, some.tile, n, some.order) > 0).any()  # the term is live here
