"""Pipelines over several accelerators: the exact partition against brute force, PipeBERT's binary
search never better than it, invariants of the steady-state model, and the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap import api, chain
from gemmap.errors import GemmapError
from gemmap.pipeline import capped, units_of
from gemmap.search import SearchOptions
from gemmap.workload import Overrides
from tests.conftest import ROOT
from tests.test_cli import gemmap

HEURISTIC = SearchOptions(method="heuristic")


@st.composite
def tables(draw, k_max: int = 3, n_max: int = 6) -> chain.Tables:
    k = draw(st.integers(1, k_max))
    n = draw(st.integers(1, n_max))
    pos = st.floats(0.01, 10.0, allow_nan=False)

    def grid(elem) -> np.ndarray:
        return np.array(draw(st.lists(st.lists(elem, min_size=n, max_size=n), min_size=k, max_size=k)))

    return chain.Tables(
        time_s=grid(pos),
        dram_bytes=grid(st.floats(0.0, 10.0, allow_nan=False)),
        energy_pj=grid(pos),
        fence_s=np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))),
        bandwidth=draw(st.floats(0.1, 20.0)),
    )


def brute(t: chain.Tables, key, floor: float = 0.0) -> float:
    evs = [chain.evaluate(t, p) for p in chain.all_partitions(t.k, t.n)]
    return min(key(e) for e in evs if e.period_s * floor <= 1 + 1e-12)


@given(tables())
def test_exact_throughput_equals_brute_force(t):
    best = chain.max_throughput(t)
    assert best.period_s == pytest.approx(brute(t, lambda e: e.period_s), rel=1e-9)
    assert chain.enumerate_partitions(t, "throughput").period_s == pytest.approx(best.period_s, rel=1e-9)


@given(tables(), st.floats(0.0, 1.0))
def test_latency_and_edp_under_a_floor_equal_brute_force(t, share):
    floor = share * chain.max_throughput(t).throughput  # a floor some partition reaches
    for objective, key in (("latency", lambda e: e.latency_s), ("edp", lambda e: e.edp)):
        got = chain.enumerate_partitions(t, objective, floor)
        assert got.throughput >= floor * (1 - 1e-9)
        assert key(got) == pytest.approx(brute(t, key, floor), rel=1e-9)


@given(tables())
def test_binary_search_is_never_better_than_the_exact_partition(t):
    trace = chain.bisection(t)
    assert trace.best.period_s >= chain.max_throughput(t).period_s * (1 - 1e-12)
    assert 1 <= trace.evaluations <= chain.count_partitions(t.k, t.n)


@given(tables(k_max=1))
def test_one_accelerator_is_its_alone_time(t):
    best = chain.max_throughput(t)
    assert best.period_s == pytest.approx(max(t.time_s.sum(), t.dram_bytes.sum() / t.bandwidth))


@given(tables(), st.floats(1.0, 10.0))
def test_more_bandwidth_never_hurts(t, factor):
    wider = chain.Tables(t.time_s, t.dram_bytes, t.energy_pj, t.fence_s, t.bandwidth * factor)
    assert chain.max_throughput(wider).period_s <= chain.max_throughput(t).period_s * (1 + 1e-12)
    assert chain.data_parallel(wider).throughput >= chain.data_parallel(t).throughput * (1 - 1e-12)


@given(tables())
def test_pipeline_and_data_parallel_reach_at_least_the_best_accelerator_alone(t):
    alone = max(1 / max(t.time_s[a].sum(), t.dram_bytes[a].sum() / t.bandwidth) for a in range(t.k))
    assert chain.max_throughput(t).throughput >= alone * (1 - 1e-9)
    assert chain.data_parallel(t).throughput >= alone * (1 - 1e-9)


def test_hand_derived_two_stage_example():
    # units of 1 s and 3 s on A, 2 s and 1 s on B; no traffic: A takes unit 0, B unit 1 -> period 1 s
    t = chain.Tables(np.array([[1.0, 3.0], [2.0, 1.0]]), np.zeros((2, 2)), np.ones((2, 2)), np.zeros(2), 1.0)
    best = chain.max_throughput(t)
    assert best.partition == chain.Partition((0, 1), (0, 1, 2)) and best.period_s == 1.0 and best.latency_s == 2.0
    # 4 bytes per unit on a 4 B/s channel: 8 bytes per inference whatever the cut -> period 2 s
    t = chain.Tables(t.time_s, np.full((2, 2), 4.0), t.energy_pj, t.fence_s, 4.0)
    assert chain.max_throughput(t).period_s == 2.0


def test_bad_tables_are_one_line_errors():
    t = chain.Tables(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), np.zeros(2), 0.0)
    with pytest.raises(GemmapError, match="bandwidth must be positive"):
        chain.max_throughput(t)
    t = chain.Tables(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), np.zeros(2), 1.0)
    with pytest.raises(GemmapError, match="throughput floor"):
        chain.enumerate_partitions(t, "latency", 100.0)


# --- on real mappings -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pair():
    w = api.load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    archs = (api.load_arch("gemmini-32x32"), api.load_arch("gemmini-transformer"))
    return w, archs, api.pipeline(w, archs, HEURISTIC)


def test_units_are_matmuls_per_block(tiny_pair):
    w, archs, r = tiny_pair
    rows = api.map_workload(archs[0], w, HEURISTIC).layers
    blocks = max(u.block for u in r.units) + 1
    assert blocks == 2 and len(r.units) == blocks * len(w.problems)  # bert-tiny: 2 layers, 8 matmuls each
    assert [u.rows[0][0] for u in r.units[:3]] == ["q_proj", "k_proj", "v_proj"]
    assert len(units_of(rows, "blocks")) == blocks
    # every row instance is in exactly one unit
    for x in rows:
        assert sum(c for u in r.units for n, c in u.rows if n == x.name) == x.repeat


def test_alone_is_the_mapped_total(tiny_pair):
    w, archs, r = tiny_pair
    for a, alone in zip(archs, r.alone):
        total = api.map_workload(a, w, HEURISTIC).total
        assert alone.evaluation.busy_s[0] == pytest.approx(total.cycles / (a.frequency_mhz * 1e6))
        assert alone.evaluation.energy_total_pj == pytest.approx(total.energy_pj)
    assert r.throughput >= max(a.evaluation.throughput for a in r.alone) * (1 - 1e-9)
    assert sum(s.cycles for s in r.stages if s.arch == archs[0]) <= r.alone[0].result.total.cycles


def test_one_accelerator_is_refused():
    w = api.load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    with pytest.raises(GemmapError, match="at least two accelerators"):
        api.pipeline(w, (api.load_arch("gemmini"),), HEURISTIC)


def test_cli_pipeline_json_and_plot(tmp_path):
    out = tmp_path / "p.json"
    r = gemmap(
        "pipeline", "bert-tiny", "--arch", "gemmini-32x32", "--arch", "gemmini-transformer", "--search", "heuristic",
        "--json", str(out), "--plot", str(tmp_path / "g"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert set(data["alone"]) == {"gemmini-32x32", "gemmini-transformer"}
    assert data["throughput"] >= max(data["alone"].values()) * (1 - 1e-9)
    assert {"arch", "layers", "cycles"} <= set(data["stages"][0])
    assert data["binary_search"]["throughput"] <= data["throughput"] * (1 + 1e-9)
    assert (tmp_path / "g.png").stat().st_size > 0 and (tmp_path / "g.svg").stat().st_size > 0
    assert max(len(line) for line in r.stdout.splitlines()) <= 100


@pytest.mark.parametrize(
    "args, message",
    [
        (("--arch", "gemmini"), "at least two accelerators"),
        (("--arch", "gemmini", "--arch", "gemmini", "--dram-gb-per-s", "0"), "expected a number > 0"),
        (("--arch", "gemmini", "--arch", "gemmini", "--json", "/"), "--json"),
    ],
)
def test_cli_pipeline_bad_input(args, message):
    r = gemmap("pipeline", "bert-tiny", "--search", "heuristic", *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_units_of_a_decoder_keep_the_lm_head_outside_the_blocks():
    w = api.load_workload("llama2-7b", overrides=Overrides(phase="decode", kv_len=64))
    units = units_of(api.map_workload(api.load_arch("gemmini"), w, HEURISTIC).layers)
    assert units[-1].block is None and units[-1].rows[-1][0] == "lm_head"
    assert {u.block for u in units[:-1]} == set(range(32))
    assert units[0].rows[0][0] == "norm1" and units[0].rows[1][0] == "q_proj"  # the pre-norm joins q_proj


def test_two_identical_instances_are_named_apart_and_mapped_once():
    w = api.load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    arch = api.load_arch("gemmini-transformer")
    r = api.pipeline(w, (arch, arch), HEURISTIC)
    assert set(r.to_json()["alone"]) == {"gemmini-transformer", "gemmini-transformer#2"}
    assert r.alone[0].result is r.alone[1].result
    # the two blocks of bert-tiny split evenly: twice the throughput of one instance
    assert r.throughput == pytest.approx(2 * r.alone[0].evaluation.throughput, rel=1e-9)


def test_a_channel_slower_than_an_instance_caps_its_mapping():
    w = api.load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    archs = (api.load_arch("gemmini-32x32"), api.load_arch("gemmini-transformer"))  # 64 B/cycle at 1 GHz
    r = api.pipeline(w, archs, HEURISTIC, bandwidth=2e9)
    assert [a.result.arch.dram.bytes_per_cycle for a in r.alone] == [2.0, 2.0]
    fast = api.pipeline(w, archs, HEURISTIC)
    assert fast.throughput >= r.throughput and capped(archs[0], 1e12) is archs[0]
