"""Searches: optimal = exhaustive, optimal ≤ random, time limits, refusals, CLI errors."""

from __future__ import annotations

import collections
import dataclasses

import pytest

from gemmap.arch import L2
from gemmap.errors import GemmapError
from gemmap.search import OBJECTIVES, SearchOptions, find_mapping, objective_value
from gemmap.workload import Problem
from tests.test_cli import gemmap
from tests.test_mapspace import small_arch

SHAPES = [(7, 5, 13), (17, 3, 11), (12, 9, 8), (1, 23, 6), (29, 19, 2), (64, 48, 40)]
SHAPES_L2 = [(7, 5, 13), (1, 23, 6), (5, 4, 3), (11, 7, 5)]


def _value(result):
    return objective_value(result.cost, result.objective)


@pytest.mark.parametrize("shape,l2", [(s, None) for s in SHAPES] + [(s, 1) for s in SHAPES_L2])
def test_optimal_equals_exhaustive(gemmini, shape, l2):
    arch = small_arch(gemmini, l2)
    p = Problem("t", *shape)
    for objective in OBJECTIVES:
        for full_rows in (False, True):
            try:
                ex = find_mapping(arch, p, SearchOptions(method="exhaustive", objective=objective), full_rows=full_rows)
            except GemmapError:
                continue  # empty space (full rows do not fit)
            opt = find_mapping(arch, p, SearchOptions(method="optimal", objective=objective), full_rows=full_rows)
            assert opt.proven_optimal and ex.proven_optimal
            assert _value(opt) == pytest.approx(_value(ex), rel=1e-12), (shape, objective, full_rows)
            if full_rows:
                assert opt.mapping.local[2] == shape[2]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_optimal_at_most_random_and_heuristic(gemmini, transformer_arch, objective):
    for arch in (gemmini, transformer_arch):
        p = Problem("t", 300, 200, 130)
        opt = find_mapping(arch, p, SearchOptions(method="optimal", objective=objective))
        rnd = find_mapping(arch, p, SearchOptions(method="random", objective=objective, samples=3000, seed=5))
        heu = find_mapping(arch, p, SearchOptions(method="heuristic", objective=objective))
        assert opt.proven_optimal
        assert _value(opt) <= _value(rnd) * (1 + 1e-12) and _value(opt) <= _value(heu) * (1 + 1e-12)
        assert rnd.evaluated == 3000 and not rnd.proven_optimal


def test_optimal_full_rows_at_most_heuristic(gemmini):
    p = Problem("t", 128, 64, 256)
    opt = find_mapping(gemmini, p, SearchOptions(), full_rows=True)
    heu = find_mapping(gemmini, p, SearchOptions(method="heuristic"), full_rows=True)
    assert opt.mapping.local[2] == 256 and _value(opt) <= _value(heu)
    c = next(t for t in opt.cost.traffic if t.tensor == "C" and t.level == "local")
    assert c.visits == 128 * 256


def test_time_limit_returns_best_so_far(transformer_arch):
    r = find_mapping(transformer_arch, Problem("t", 512, 768, 3072), SearchOptions(time_limit=0.001))
    assert not r.proven_optimal and r.cost.cycles > 0


def test_exhaustive_refuses_big_spaces(gemmini):
    with pytest.raises(GemmapError, match="exhaustive limit"):
        find_mapping(gemmini, Problem("t", 64, 64, 64), SearchOptions(method="exhaustive", max_exhaustive=1000))


def test_random_is_deterministic(gemmini):
    p = Problem("t", 100, 70, 50)
    a, b = (find_mapping(gemmini, p, SearchOptions(method="random", samples=500, seed=9)) for _ in range(2))
    assert a.mapping == b.mapping


def test_cli_search_methods(tmp_path):
    r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "random", "--samples", "200", "--seed", "2",
               "--json", str(tmp_path / "r.json"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = gemmap("map", "workloads/bert-tiny.yaml", "--json", str(tmp_path / "o.json"))
    assert r.returncode == 0, r.stderr
    import json

    layers = [x for x in json.loads((tmp_path / "o.json").read_text())["layers"] if x.get("search")]
    assert layers and all(x["search"]["proven_optimal"] for x in layers)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--samples", "0", "--search", "random"], "≥ 1"),
        (["--objective", "edpp"], "edp"),
        (["--search", "exhaustiv"], "exhaustive"),
        (["--explain", "nope"], "nope"),
    ],
)
def test_cli_bad_input_one_line_exit_2(args, message):
    r = gemmap("map", "workloads/bert-tiny.yaml", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in r.stderr
    assert len(lines) == 1


@pytest.mark.parametrize(
    "shape,l2,full_rows", [((300, 200, 130), None, False), ((96, 64, 160), None, True), ((40, 24, 36), 8, False)]
)
def test_optimal_shared_bound_grid_equals_fresh(gemmini, monkeypatch, shape, l2, full_rows):
    """The bound grid cached across SRAM capacities gives the same search as a fresh one."""
    from gemmap.search import optimal

    base = dataclasses.replace(gemmini, l2=L2(kib=l2)) if l2 else gemmini
    base = dataclasses.replace(base, energy=dataclasses.replace(base.energy, leakage_pj_per_cycle=0.25))
    p = Problem("t", *shape)
    monkeypatch.setattr(optimal, "_GRIDS", collections.OrderedDict())
    monkeypatch.setattr(optimal, "_SEEN", collections.OrderedDict())
    for n, (spad, acc) in enumerate(((256, 64), (16, 8), (64, 256), (1024, 16))):
        arch = base.with_overrides(spad_kib=spad, acc_kib=acc)
        for objective in OBJECTIVES:
            options = SearchOptions(objective=objective)
            shared = find_mapping(arch, p, options, full_rows=full_rows)
            # the first capacity bounds only its fitting triples; from the second on, one grid serves all
            assert len(optimal._GRIDS) == (n > 0)
            fresh = optimal.optimal_search(arch, p, options, full_rows, share=False)
            assert shared.mapping == fresh.mapping and shared.cost == fresh.cost
            assert shared.evaluated == fresh.evaluated and shared.proven_optimal and fresh.proven_optimal


@pytest.mark.parametrize("shape,l2,full_rows", [((12, 9, 8), None, False), ((29, 19, 2), None, True),
                                                ((11, 7, 5), 1, False), ((7, 5, 13), 1, True)])  # fmt: skip
def test_optimal_chunked_bound_pass_equals_whole(gemmini, shape, l2, full_rows):
    """A bound pass in chunks of 1, 3 or 50 tile triples gives the same search (mapping, cost, effort,
    proof) as one pass over every triple at once."""
    from gemmap.search import optimal

    arch = dataclasses.replace(gemmini, l2=L2(kib=l2)) if l2 else gemmini
    p = Problem("t", *shape)
    for objective in OBJECTIVES:
        options = SearchOptions(objective=objective)
        whole = optimal.optimal_search(arch, p, options, full_rows, chunk=1 << 30, share=False)
        for chunk in (1, 3, 50):
            part = optimal.optimal_search(arch, p, options, full_rows, chunk=chunk, share=False)
            assert (part.mapping, part.cost, part.evaluated) == (whole.mapping, whole.cost, whole.evaluated)
            assert part.proven_optimal and whole.proven_optimal


def test_time_limit_bounds_the_bound_pass(gemmini):
    """--time-limit stops the bound pass itself between chunks: a best-so-far mapping, not proven,
    after a small part of the work of the full search (1.9 M evaluations for this shape)."""
    from gemmap.search import optimal

    p = Problem("t", 512, 768, 3072)
    r = optimal.optimal_search(gemmini, p, SearchOptions(time_limit=1e-6), chunk=256, share=False)
    assert not r.proven_optimal and r.cost.cycles > 0 and r.evaluated < 100_000


def test_absurd_sizes_refused_before_any_search(gemmini, monkeypatch):
    """A layer over a limit is refused with the limit named, before any layer is searched."""
    from gemmap import api, mapper, schedule
    from gemmap.search import MAX_TILE_TRIPLES
    from gemmap.workload import Workload

    def no_search(*args, **kwargs):
        raise AssertionError("a search ran before the size check")

    monkeypatch.setattr(mapper, "find_mapping", no_search)
    small, huge = Problem("small", 64, 64, 64), Problem("huge", 10**9, 768, 768)
    wl = Workload("w", (small, huge))
    for fusion in ("none", "auto"):
        with pytest.raises(GemmapError, match=f"huge .*tile triples, over its limit of {MAX_TILE_TRIPLES:,}"):
            api.map_workload(gemmini, wl, SearchOptions(), fusion=fusion)
    with pytest.raises(GemmapError, match=r"huge .*tile triples"):
        schedule.schedule_workload(gemmini, wl, SearchOptions())
    # Gemmini's own tiler needs no tables, but the model's counts must stay exact
    monkeypatch.undo()
    api.map_workload(gemmini, Workload("w", (huge,)), SearchOptions(method="heuristic"))
    wl = Workload("w", (small, Problem("qk", 10**9, 64, 10**9)))
    with pytest.raises(GemmapError, match=r"qk \(1000000000x64x1000000000\) has 6.4e\+19 MACs, over .* 2\*\*50"):
        api.map_workload(gemmini, wl, SearchOptions(method="heuristic"))


@pytest.mark.parametrize(
    ("command", "limit"),
    [
        (["map", "{huge}"], "10000000"),  # a sequence length over the spec's bound (gemmap/specio.py)
        (["schedule", "workloads/bert.yaml", "--seq-len", "512,1000000000"], "10,000,000"),
        (["sweep", "workloads/bert.yaml", "--seq-len", "1000000000", "--no-cache", "--out", "{tmp}/sw"], "10,000,000"),
        (["map", "workloads/bert.yaml", "--seq-len", "2000000"], "over its limit of 40,000,000"),  # within it
        (["schedule", "workloads/bert.yaml", "--seq-len", "512,2000000"], "over its limit of 40,000,000"),
        (["sweep", "workloads/bert.yaml", "--seq-len", "2000000", "--no-cache", "--out", "{tmp}/sw"], "40,000,000"),
    ],
)
def test_cli_absurd_seq_len_one_line_exit_2(tmp_path, command, limit):
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: huge\nmodel: bert\nseq_len: 1000000000\n")
    r = gemmap(*(a.format(huge=huge, tmp=tmp_path) for a in command))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and limit in r.stderr
    assert not (tmp_path / "sw").exists()


def test_heuristic_runs_gemminis_tiler_as_the_soc_sizes_it(firesim_arch):
    """On an SoC whose software header states smaller memories than the RTL has (DOSA's: 256 / 64 KiB
    against 4 MiB), Gemmini's tilers size their tiles for the header; on a cache L2 the L2 keeps what
    fits of the loop nest. The hardware's sizes give BERT's q_proj tiles of 2.5 MB, which a 512 KiB L2
    tile cannot hold (the search refused them before)."""
    from gemmap.conv import ConvShape
    from gemmap.conv_tiler import tiled_conv_auto
    from gemmap.interop.convert import cache_factors
    from gemmap.search.heuristic import heuristic_mapping
    from tests.test_conv import conv_problem

    p = Problem("q_proj", 512, 768, 768)
    got = find_mapping(firesim_arch, p, SearchOptions(method="heuristic"))
    view = firesim_arch.tiler_view()
    assert (view.scratchpad.kib, view.accumulator.kib) == (256, 64)
    want = heuristic_mapping(view, p)
    assert got.mapping.local == want.local
    assert got.mapping.l2_factors == cache_factors(firesim_arch, p, want.local, want.dram_order)
    assert heuristic_mapping(firesim_arch, p).local != want.local
    shape = ConvShape(n=1, k=256, c=256, p=14, q=14, r=3, s=3, stride=1, padding=1, dilation=1, h=14, w=14)
    conv = conv_problem(shape, "c")
    got = find_mapping(firesim_arch, conv, SearchOptions(method="heuristic"))
    assert got.mapping == tiled_conv_auto(view, conv)
