"""The memory-side cache (``dram.cache_kib``, gemmap/warm.py "Memory-side cache"): the first fills'
memory rate by hand (cold, warm under a set's worth, warm at one capacity, larger than it), the extra
memory cycles by hand and in the model's DRAM time, scalar = batched, optimal = exhaustive where the
misses bind, and the arch checks."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from gemmap import convmodel, model, warm
from gemmap.conv import ORDER_INDEX, ConvMapping, ConvShape, conv_shape
from gemmap.errors import GemmapError
from gemmap.mapspace import MapSpace
from gemmap.workload import Problem
from tests.agree import conv_agrees, matmul_agrees, optimal_matches_exhaustive
from tests.conftest import ROOT
from tests.test_convspace import conv_problem
from tests.test_mapspace import small_arch

HIT, MISS = 7.111, 4.741  # arch/gemmini-firesim.yaml: 64 B / 9 cycles, 128 B / 27 cycles


def with_dram(arch, **fields):
    return dataclasses.replace(arch, dram=dataclasses.replace(arch.dram, **fields))


def warm_arch(arch):
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, warm_start=True))


def no_cache(arch):
    return with_dram(arch, cache_kib=None, cache_ways=None, miss_bytes_per_cycle=None, victim_bytes_per_cycle=None)


def clean(arch):
    """``arch`` with clean victims (no write-back before a miss's refill): the checks of the miss rate alone."""
    return with_dram(arch, victim_bytes_per_cycle=None)


def test_first_byte_rate_by_hand(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_allocate_memory.py)
    assert (firesim_arch.dram.cache_kib, firesim_arch.dram.cache_ways) == (4096, 8)
    small = Problem("t", 64, 256, 128)  # 56 KiB: under one line a set of the 4 MiB cache
    cold = warm.memory_cycles_per_first_byte(firesim_arch, small)
    assert cold == pytest.approx(1 / MISS)  # a cold run finds nothing in it
    assert warm.memory_cycles_per_first_byte(warm_arch(firesim_arch), small) == pytest.approx(1 / HIT)
    one = Problem("t", 1024, 1024, 2048)  # A 1 MiB + B 2 MiB + C 2 MiB = 5 MiB: larger than the cache
    assert sum(warm.compulsory_by_tensor(firesim_arch, one)) == 5 << 20
    assert warm.memory_cycles_per_first_byte(warm_arch(firesim_arch), one) == pytest.approx(1 / MISS)
    full = Problem("t", 1024, 1024, 1024)  # 3 MiB: x = 3/4 of the cache, 6 inserts a set
    held = (1 - (7 / 8) ** 6) / 0.75
    got = warm.memory_cycles_per_first_byte(warm_arch(firesim_arch), full)
    assert got == pytest.approx(held / HIT + (1 - held) / MISS)
    assert warm.memory_cycles_per_first_byte(no_cache(firesim_arch), full) == pytest.approx(1 / HIT)


def test_extra_cycles_by_hand(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_allocate_memory.py)
    p = Problem("t", 64, 256, 128)  # A 16 KiB, B 32 KiB, C 8 KiB
    comp = 64 * 256 + 256 * 128 + 64 * 128
    assert warm.cache_miss_cycles(firesim_arch, p) == pytest.approx(comp * (1 / MISS - 1 / HIT))
    warm_p = warm_arch(firesim_arch)
    assert warm.warm_bytes(warm_p, p) == comp  # all of it in the warm L2: nothing comes from memory
    assert warm.cache_miss_cycles(warm_p, p) == 0.0
    assert warm.cache_miss_cycles(no_cache(firesim_arch), p) == 0.0


def test_the_model_adds_exactly_the_miss_cycles(firesim_arch):
    p = Problem("t", 256, 512, 384)
    m = MapSpace(firesim_arch, p).sample(1, seed=2)[0]
    with_cache, without = model.evaluate(firesim_arch, p, m), model.evaluate(no_cache(firesim_arch), p, m)
    assert with_cache.dram_bytes == without.dram_bytes  # the bytes do not change, their time does
    extra = warm.cache_miss_cycles(firesim_arch, p)
    assert extra > 0 and with_cache.dram_cycles - without.dram_cycles == pytest.approx(extra, rel=1e-12)
    assert with_cache.dram_cycles == pytest.approx(with_cache.dram_bytes / HIT + extra, rel=1e-12)
    core = with_cache.compute_cycles + with_cache.exposed_transfer_cycles
    assert abs(with_cache.cycles - math.ceil(max(core, with_cache.dram_cycles))) <= 1


@pytest.mark.parametrize("warm_start", [False, True])
def test_scalar_equals_batched(firesim_arch, warm_start):
    arch = warm_arch(firesim_arch) if warm_start else firesim_arch
    p = Problem("t", 700, 900, 800)  # 2.2 MB: misses a cold cache, mostly hits a warm one
    assert warm.cache_miss_cycles(arch, p) > 0
    matmul_agrees(arch, p, MapSpace(arch, p).sample(300, seed=7), 15)
    cp = conv_problem(ConvShape(n=1, k=128, c=128, p=56, q=56, r=3, s=3, stride=1, padding=1))  # 950 KB
    assert warm.cache_miss_cycles(arch, cp) > 0
    conv_agrees(arch, cp)


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_optimal_equals_exhaustive_where_misses_bind(gemmini, firesim_arch, objective):
    # a 4x4 array, 1 KiB SRAMs and L2, a 1 KiB memory-side cache missed at 0.5 B/cycle: every layer is cold
    arch = with_dram(small_arch(gemmini, 1), bytes_per_cycle=2.0, cache_kib=1, cache_ways=2, miss_bytes_per_cycle=0.5)
    for shape in ((7, 5, 13), (16, 23, 6), (4, 40, 9)):
        p = Problem("t", *shape)
        assert warm.cache_miss_cycles(arch, p) > 0
        optimal_matches_exhaustive(arch, p, objective)
    # a conv whose memory floor binds at the optimum: a 1x1 layer, memory at 1 B/cycle, misses at 0.25
    conv_arch = dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, kib=16))
    conv_arch = with_dram(conv_arch, bytes_per_cycle=1.0, cache_kib=8, miss_bytes_per_cycle=0.25)
    p = conv_problem(ConvShape(n=1, k=32, c=32, p=4, q=4, r=1, s=1, stride=1, padding=0))
    assert warm.cache_miss_cycles(conv_arch, p) > 0
    opt = optimal_matches_exhaustive(conv_arch, p, objective)
    assert opt.cost.bound == "DRAM"


def test_a_cache_without_an_l2_starts_cold(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_allocate_memory.py)
    arch = dataclasses.replace(firesim_arch, l2=None)
    p = Problem("t", 64, 256, 128)
    comp = 64 * 256 + 256 * 128 + 64 * 128
    assert warm.cache_miss_cycles(arch, p) == pytest.approx(comp * (1 / MISS - 1 / HIT))
    matmul_agrees(arch, p, MapSpace(arch, p).sample(200, seed=4), 10)
    conv_agrees(arch, conv_problem(ConvShape(n=1, k=32, c=16, p=12, q=12, r=3, s=3, stride=1, padding=1)))


def test_a_miss_is_never_faster_than_a_hit(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_allocate_memory.py)
    # a hit rate capped or fitted below the stated miss rate makes every first fill that slow
    slow = with_dram(firesim_arch, bytes_per_cycle=4.0)
    p = Problem("t", 64, 256, 128)
    assert warm.memory_cycles_per_first_byte(slow, p) == pytest.approx(1 / 4.0)
    assert warm.cache_miss_cycles(slow, p) == 0.0


def test_arch_checks(firesim_arch):
    with pytest.raises(GemmapError, match="go together"):
        with_dram(firesim_arch, miss_bytes_per_cycle=None).checked("a.yaml")
    with pytest.raises(GemmapError, match="cache_ways"):
        with_dram(no_cache(firesim_arch), cache_ways=8).checked("a.yaml")
    assert no_cache(firesim_arch).checked("a.yaml") is not None


def test_evaluate_says_what_the_misses_add(capsys):
    from gemmap.cli import main

    arch = str(ROOT / "arch" / "gemmini-firesim.yaml")
    mapping = "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32"
    assert main(["evaluate", "--layer", "matmul M=128 K=768 N=768", "--arch", arch, "--mapping", mapping]) == 0
    assert "memory-side cache add" in " ".join(capsys.readouterr().out.split())


def test_the_map_report_floor_counts_the_misses(firesim_arch):
    from gemmap.mapper import LayerResult
    from gemmap.report import dram_floor

    p = Problem("t", 256, 512, 384)
    c = model.evaluate(firesim_arch, p, MapSpace(firesim_arch, p).sample(1, seed=2)[0])
    layer = LayerResult("t", "matmul", {"M": 256, "K": 512, "N": 384}, 1, c.macs, c.cycles, c.energy_pj,
                        c.dram_bytes, c.dram_bytes_lower_bound, c.utilization, problem=p)  # fmt: skip
    assert dram_floor(layer, firesim_arch) == pytest.approx(c.dram_cycles, rel=1e-12)
    assert dram_floor(layer, firesim_arch) > c.dram_bytes / HIT
    # a searched conv row reports its cost's floor, reload misses included
    from gemmap.search import SearchResult

    small = with_dram(firesim_arch, cache_kib=4, cache_ways=2)
    cp = conv_problem(ConvShape(n=1, k=64, c=16, p=8, q=8, r=3, s=3, stride=1, padding=1))
    m = ConvMapping(tile=(1, 4, 8, 16, 3, 3, 16), order="kbpqrsc")
    cc = convmodel.evaluate_conv(small, cp, m)
    row = LayerResult.from_search(cp, SearchResult(m, cc, "given", "latency", 1, 0.0, False))
    assert dram_floor(row, small) == cc.dram_cycles > cc.dram_bytes / HIT + warm.cache_miss_cycles(small, cp)


def test_conv_reload_misses_by_hand(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_allocate_memory.py)
    # C16 K64 8x8 3x3 (pad 1), tiles k 16 (4 of them) and p 4 (2), order k outermost: the input is
    # re-walked by the k loop, 3 times after its first pass; between two walks the loops inside it
    # touch the whole input (10 x 10 x 16 B = 1,600 B), one k tile of weights (16 x 16 x 9 = 2,304 B)
    # and its outputs (8 x 8 x 16 = 1,024 B): 4,928 B. A 4 KiB 2-way cache keeps nothing of that; a
    # 64 KiB 8-way one keeps it all (under one line a set).
    shape = ConvShape(n=1, k=64, c=16, p=8, q=8, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    m = ConvMapping(tile=(1, 4, 8, 16, 3, 3, 16), order="kbpqrsc")
    T, n = np.array([m.tile]), np.array([[1, 2, 1, 4, 1, 1, 1]])
    order = np.array([ORDER_INDEX[m.order]])
    reload_a = np.array([1000.0])
    for kib, ways, missed in ((4, 2, 1.0), (64, 8, 0.0)):
        arch = with_dram(firesim_arch, cache_kib=kib, cache_ways=ways)
        got = convmodel.cache_reload_cycles(arch, conv_shape(p, arch), T, n, order, reload_a, np.zeros(1))
        assert float(got[0]) == pytest.approx(1000.0 * missed * (1 / MISS - 1 / HIT))
    # in the model: the reload bytes are the input's passes after the first, at the L2 boundary
    small = with_dram(firesim_arch, cache_kib=4, cache_ways=2)
    cost = convmodel.evaluate_conv(small, p, m)
    # one pass: 16 channels x (5 + 5) rows (output rows 0-3 read input rows -1..4, 4-7 read 3..8, clipped to
    # the image's 0..7) x 8 columns (-1..8 clipped) = 1,280 B, re-read by 3 more k tiles
    vol = 16 * (5 + 5) * 8
    assert convmodel._input_volume(conv_shape(p, small), m.tile) == vol
    reload = vol * (4 - 1)
    assert cost.dram_cycles == pytest.approx(
        cost.dram_bytes / HIT + warm.cache_miss_cycles(small, p) + reload * (1 / MISS - 1 / HIT), rel=1e-12
    )


def test_dirty_victims_by_hand(firesim_arch):
    # a miss whose victim is dirty writes its 128-B block back first, at 8 B/cycle; the cached lines are
    # dirty in the share of the layer's compulsory bytes it writes: C 1 MiB of A 64 KiB + B 64 KiB + C
    assert firesim_arch.dram.victim_bytes_per_cycle == 8.0
    p = Problem("t", 1024, 64, 1024)
    mm_share = (1 << 20) / ((1 << 20) + (128 << 10))
    shape = conv_shape(p, firesim_arch)
    assert warm.victim_cycles_per_byte(firesim_arch, shape) == pytest.approx(mm_share / 8)
    assert warm.miss_cycles_per_byte(firesim_arch, shape) == pytest.approx(1 / MISS - 1 / HIT + mm_share / 8)
    assert warm.memory_cycles_per_first_byte(firesim_arch, p) == pytest.approx(1 / MISS + mm_share / 8)  # cold
    assert warm.victim_cycles_per_byte(clean(firesim_arch), shape) == 0.0
    # a conv: input 10 x 10 x 16, weights 9 x 16 x 32, output 8 x 8 x 32 (int8)
    cp = conv_problem(ConvShape(n=1, k=32, c=16, p=8, q=8, r=3, s=3, stride=1, padding=0))
    out = 8 * 8 * 32
    share = out / (10 * 10 * 16 + 9 * 16 * 32 + out)
    assert warm.victim_cycles_per_byte(firesim_arch, conv_shape(cp, firesim_arch)) == pytest.approx(share / 8)
    # in the model: the first fills that miss take the victims' time too, nothing else changes
    m = MapSpace(firesim_arch, p).sample(1, seed=2)[0]
    dirty, plain = model.evaluate(firesim_arch, p, m), model.evaluate(clean(firesim_arch), p, m)
    assert dirty.dram_bytes == plain.dram_bytes
    extra = warm.cache_miss_cycles(firesim_arch, p) - warm.cache_miss_cycles(clean(firesim_arch), p)
    # the cold run misses every compulsory byte (1.125 MiB): each pays its share of victims
    assert extra == pytest.approx((1 << 20) * 1.125 * mm_share / 8)
    assert dirty.dram_cycles - plain.dram_cycles == pytest.approx(extra, rel=1e-12)
    with pytest.raises(GemmapError, match="victim_bytes_per_cycle"):
        with_dram(firesim_arch, cache_kib=None, cache_ways=None, miss_bytes_per_cycle=None).checked("a.yaml")
