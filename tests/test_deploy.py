"""Models larger than memory: the grouping DP against every plan, greedy against it (equal when the
cost is linear, as the seed paper proves; not otherwise), hand-derived totals, the command end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap import api, grouping
from gemmap.deploy import MIB
from gemmap.errors import GemmapError
from gemmap.search import SearchOptions
from gemmap.workload import Overrides
from tests.test_cli import gemmap

HEURISTIC = SearchOptions(method="heuristic")


@st.composite
def chains(draw, exits: bool = True) -> grouping.Chain:
    n = draw(st.integers(1, 7))
    w = np.array(draw(st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n)))
    c = np.array(draw(st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n)))
    p = np.zeros(n)
    if exits:
        raw = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
        p = raw / max(1.0, raw.sum())
    memory = draw(st.floats(float(w.max()), float(w.sum()) + 1.0))
    return grouping.Chain(w, c, memory, draw(st.floats(0.5, 3.0)), draw(st.floats(0.0, 1.0)), p)


def brute(ch: grouping.Chain, mode: str, key) -> float | None:
    plans = [grouping.evaluate(ch, mode, b) for b in grouping.all_plans(ch.n) if grouping.fits(ch, mode, b)]
    return min(map(key, plans)) if plans else None


@given(chains(), st.sampled_from(grouping.MODES), st.booleans())
def test_optimal_plan_equals_brute_force(ch, mode, expected):
    key = (lambda p: p.expected_latency_s) if expected else (lambda p: p.latency_s)
    best = brute(ch, mode, key)
    if best is None:
        with pytest.raises(GemmapError):
            grouping.optimal(ch, mode, expected)
        return
    plan = grouping.optimal(ch, mode, expected)
    assert grouping.fits(ch, mode, plan.bounds)
    assert key(plan) == pytest.approx(best, rel=1e-9)
    g = grouping.greedy(ch, mode)
    if g is not None:  # greedy is a valid plan, never better than the optimum
        assert grouping.fits(ch, mode, g.bounds) and key(g) >= key(plan) * (1 - 1e-9)


@given(chains(exits=False))
def test_greedy_is_optimal_when_the_cost_is_linear(ch):
    # serial, no exits: latency = (number of groups) x storage latency + W / B + C; greedy needs fewest groups
    assert grouping.greedy(ch, "serial").latency_s == pytest.approx(grouping.optimal(ch, "serial").latency_s)


def test_hand_derived_plans_and_a_case_where_greedy_loses():
    # 4 units of 1 byte, 1 s of compute each, memory 2 bytes, 1 B/s, no access latency
    ch = grouping.Chain(np.ones(4), np.ones(4), 2.0, 1.0, 0.0, np.zeros(4))
    serial = grouping.optimal(ch, "serial")
    assert serial.latency_s == 8.0  # every byte loaded (4 s) then computed (4 s)
    # overlap, two groups resident together (≤ 2 bytes): 1 | 1 | 1 | 1 → 1 + max(1,1)·3 + 1 = 5 s
    assert grouping.optimal(ch, "overlap").latency_s == 5.0
    # greedy fills half the memory (1 byte) per group: the same plan here
    assert grouping.greedy(ch, "overlap").latency_s == 5.0
    # early exit after unit 0 with probability 0.9: a small first group pays (serial)
    ex = grouping.Chain(np.ones(4), np.ones(4), 2.0, 1.0, 0.0, np.array([0.9, 0, 0, 0]))
    greedy = grouping.greedy(ex, "serial")  # groups [0,2) [2,4)
    best = grouping.optimal(ex, "serial", expected=True)  # groups [0,1) [1,3) [3,4) or alike
    assert greedy.bounds == (0, 2, 4)
    # greedy: 2 (load) + 1 (unit 0) + 0.1·(1 + 2 + 2) = 3.5; best: 1 + 1 + 0.1·(2 + 2 + 1... ) < 3.5
    assert greedy.expected_latency_s == pytest.approx(3.5)
    assert best.expected_latency_s < greedy.expected_latency_s


@pytest.fixture(scope="module")
def decode():
    w = api.load_workload("llama2-7b", overrides=Overrides(phase="decode", kv_len=128))
    arch = api.load_arch("gemmini-transformer")
    return w, arch, api.map_workload(arch, w, HEURISTIC)


def test_llama_decode_on_a_small_memory(decode):
    w, arch, mapped = decode
    r = api.deploy(w, arch, HEURISTIC, memory_bytes=2048 * MIB, storage_bytes_per_s=250e6, result=mapped)
    j = r.to_json()
    assert not r.fits and 6 * 2**30 < j["total_weight_bytes"] < 7 * 2**30  # int8 LLaMA-2-7B
    assert sum(g["weight_bytes"] for g in j["groups"]) == j["total_weight_bytes"]
    assert [n for g in j["groups"] for n in g["layers"]] == [u.name for u in r.units]
    # every byte streams once per token: at least W / B, and never faster than unlimited memory
    assert j["latency_s"] >= j["total_weight_bytes"] / 250e6 and j["latency_s"] > j["unlimited_latency_s"]
    assert j["greedy"]["latency_s"] >= j["latency_s"] * (1 - 1e-9)
    kv = 2 * 32 * 129 * 4096  # K and V of 32 layers, 129 tokens, 4096 wide, int8
    assert j["resident_bytes"]["kv_cache"] == kv


def test_a_layer_larger_than_memory_is_one_line(decode):
    w, arch, mapped = decode
    with pytest.raises(GemmapError, match="lm_head's weights .* exceed"):
        api.deploy(w, arch, HEURISTIC, memory_bytes=140 * MIB, storage_bytes_per_s=250e6, result=mapped)


def test_exit_probabilities(decode, tmp_path):
    w, arch, mapped = decode
    f = tmp_path / "exits.yaml"
    f.write_text("down@7: 0.5\ndown@15: 0.25\n")
    r = api.deploy(w, arch, HEURISTIC, memory_bytes=2048 * MIB, storage_bytes_per_s=250e6, exit_probabilities=str(f),
                   result=mapped)  # fmt: skip
    assert r.early_exit is not None
    assert r.early_exit.plan.expected_latency_s <= r.best.plan.expected_latency_s * (1 + 1e-9)
    assert r.early_exit.plan.expected_latency_s < r.early_exit.plan.latency_s
    for text, message in (("down@7: 0.8\ndown@9: 0.5\n", "sum to"), ("dwn@7: 0.1\n", "did you mean 'down@7'"),
                          ("down@7: -0.1\n", "in \\[0, 1\\]")):  # fmt: skip
        f.write_text(text)
        with pytest.raises(GemmapError, match=message):
            api.deploy(w, arch, HEURISTIC, memory_bytes=2048 * MIB, storage_bytes_per_s=250e6,
                       exit_probabilities=str(f), result=mapped)  # fmt: skip


def test_cli_deploy(tmp_path):
    out = tmp_path / "d.json"
    r = gemmap(
        "deploy", "bert-tiny", "--dram-mib", "0.5", "--storage-mb-per-s", "250", "--storage-latency-us", "91",
        "--search", "heuristic", "--json", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert {"groups", "latency_s", "unlimited_latency_s", "greedy"} <= set(data)
    assert {"layers", "weight_bytes"} <= set(data["groups"][0]) and "latency_s" in data["greedy"]
    assert max(len(line) for line in r.stdout.splitlines()) <= 100
    bad = gemmap("deploy", "bert-tiny", "--dram-mib", "-1", "--storage-mb-per-s", "250", "--search", "heuristic")
    assert (
        bad.returncode == 2 and "--dram-mib: expected a number > 0" in bad.stderr and len(bad.stderr.splitlines()) == 1
    )
