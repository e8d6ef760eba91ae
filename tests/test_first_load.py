"""The first tile's loads from memory (model.first_load_lift): pinned by hand on one-tile and
multi-tile matmuls and convs, scaled by a warm L2's cold share, equal in the scalar and batched
models, and still searched exactly (optimal = exhaustive) where it binds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gemmap import convmodel, model, warm
from gemmap.conv import ConvMapping, ConvShape
from gemmap.mapping import Mapping
from gemmap.mapspace import MapSpace
from gemmap.workload import Problem
from tests.agree import conv_agrees, matmul_agrees, optimal_matches_exhaustive
from tests.test_convspace import conv_problem
from tests.test_mapspace import small_arch


def with_dram(arch, bytes_per_cycle: float):
    return dataclasses.replace(arch, dram=dataclasses.replace(arch.dram, bytes_per_cycle=bytes_per_cycle))


@pytest.fixture(scope="module")
def firesim_arch(firesim_arch):
    """The FireSim arch without its memory-side cache (tests/test_memory_cache.py covers that): every
    memory byte at dram.bytes_per_cycle."""
    return dataclasses.replace(
        firesim_arch,
        dram=dataclasses.replace(firesim_arch.dram, cache_kib=None, cache_ways=None, miss_bytes_per_cycle=None),
    )


def first_load_cycles(arch, problem: Problem, local: tuple[int, int, int]) -> float:
    """The first tile's A and B at the DMA's rates (the prologue's cycles)."""
    a_cpb, b_cpb, *_ = (float(x[0]) for x in model.dma_rates(arch, problem, np.array([local])))
    Tm, Tk, Tn = local
    return Tm * Tk * a_cpb + Tk * Tn * b_cpb


@pytest.mark.parametrize("local", [(32, 64, 48), (16, 64, 48), (32, 16, 16)])
def test_matmul_first_load_by_hand(firesim_arch, local):
    # int8 A and B: the first tile moves Tm·Tk + Tk·Tn bytes; the memory serves 64 B in 9 cycles
    # (dram.bytes_per_cycle 7.111), so they take (bytes)·9/64 cycles at least; with the bus at 16 B/cycle
    # the DMA alone needs bytes/16 plus its request costs, less than the memory's time here.
    p = Problem("t", 32, 64, 48)
    m = Mapping("ws", local, (1, 1, 1), "MKN", "MKN", db_spad=True, db_acc=True)
    Tm, Tk, Tn = local
    memory = (Tm * Tk + Tk * Tn) / firesim_arch.dram.bytes_per_cycle
    load = first_load_cycles(firesim_arch, p, local)
    assert load < memory
    lift = float(model.first_load_lift(firesim_arch, p, Tm * Tk + Tk * Tn, load))
    assert lift == pytest.approx(memory - load, abs=1e-9)
    # the lift is the only change in the core when the memory is made as fast as the bus
    slow, fast = model.evaluate(firesim_arch, p, m), model.evaluate(with_dram(firesim_arch, 16.0), p, m)
    assert slow.exposed_transfer_cycles - fast.exposed_transfer_cycles == pytest.approx(lift, abs=1e-6)
    assert slow.cycles >= fast.cycles


def test_switched_off_the_first_load_takes_the_dma_time(firesim_arch):
    off = dataclasses.replace(firesim_arch, dram=dataclasses.replace(firesim_arch.dram, first_load_from_memory=False))
    p = Problem("t", 32, 64, 48)
    assert float(model.first_load_lift(off, p, 5120, 10.0)) == 0.0
    # through the whole model: switched off, the one-tile layer costs what a memory as fast as the DMA gives
    m = Mapping("ws", (32, 64, 48), (1, 1, 1), "MKN", "MKN", db_spad=True, db_acc=True)
    fast = with_dram(firesim_arch, 16.0)
    assert model.evaluate(off, p, m).exposed_transfer_cycles == model.evaluate(fast, p, m).exposed_transfer_cycles
    assert (
        model.evaluate(firesim_arch, p, m).exposed_transfer_cycles > model.evaluate(off, p, m).exposed_transfer_cycles
    )
    matmul_agrees(off, p, MapSpace(off, p).sample(60, seed=1), 6)
    shape = ConvShape(n=1, k=32, c=16, p=8, q=8, r=3, s=3, stride=1, padding=1)
    cm = ConvMapping(tile=(1, 8, 8, 32, 3, 3, 16), order="bpqkrsc")
    cp = conv_problem(shape)
    off_conv, fast_conv = convmodel.evaluate_conv(off, cp, cm), convmodel.evaluate_conv(with_dram(off, 16.0), cp, cm)
    assert off_conv.exposed_transfer_cycles == fast_conv.exposed_transfer_cycles
    conv_agrees(off, cp)
    got = float(model.first_load_lift(firesim_arch, p, 5120, 10.0))
    assert got == pytest.approx(5120 / 7.111 - 10.0) and got == pytest.approx(720.0 - 10.0, rel=1e-4)  # ≈ 5120·9/64


def test_no_lift_when_the_memory_is_as_fast_as_the_dma(gemmini):
    # arch/gemmini.yaml: no L2, DRAM at the bus's 16 B/cycle: the DMA's own time is never shorter
    p = Problem("t", 64, 64, 64)
    for local in ((64, 64, 64), (16, 32, 64)):
        Tm, Tk, Tn = local
        load = first_load_cycles(gemmini, p, local)
        assert float(model.first_load_lift(gemmini, p, Tm * Tk + Tk * Tn, load)) == 0.0


def test_warm_l2_lifts_only_the_cold_share(firesim_arch):
    arch = dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, warm_start=True))
    small = Problem("t", 32, 64, 48)  # 5 KiB: under one line a set, all kept
    assert warm.cold_share(arch, small) == 0.0
    assert float(model.first_load_lift(arch, small, 5120, 1.0)) == 0.0
    big = Problem("t", 256, 512, 512)  # 512 KiB: one capacity, (7/8)^8 of it comes from memory
    assert sum(warm.compulsory_by_tensor(arch, big)) == arch.l2.bytes
    share = warm.cold_share(arch, big)
    assert share == pytest.approx((7 / 8) ** 8)  # 8 inserts a set, each line survives each with 7/8
    bytes_ = 64 * 512 + 512 * 64
    got = float(model.first_load_lift(arch, big, bytes_, 100.0))
    assert got == pytest.approx(bytes_ * share / arch.dram.bytes_per_cycle - 100.0)
    assert warm.cold_share(firesim_arch, big) == 1.0  # the shipped arch starts cold


def test_conv_first_load_by_hand(firesim_arch):
    # one tile covering the whole conv: the input window with its padding rows/cols clipped to the
    # tensor (C·H·W bytes) and every weight (K·C·R·S) come from memory before the first fold
    shape = ConvShape(n=1, k=32, c=16, p=8, q=8, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    m = ConvMapping(tile=(1, 8, 8, 32, 3, 3, 16), order="bpqkrsc")
    first_bytes = 16 * 8 * 8 + 32 * 16 * 3 * 3
    slow = convmodel.evaluate_conv(firesim_arch, p, m)
    fast = convmodel.evaluate_conv(with_dram(firesim_arch, 16.0), p, m)
    lift = slow.exposed_transfer_cycles - fast.exposed_transfer_cycles
    assert lift > 0
    load = first_bytes / firesim_arch.dram.bytes_per_cycle - lift  # what the DMA alone takes
    assert 0 < load < first_bytes / 16 * 4  # bus time plus request costs, below the memory's time
    terms = convmodel.tile_terms(firesim_arch, p, np.array([m.tile]))
    assert float(terms.first_lift[0]) == pytest.approx(lift, abs=1e-6)
    assert float(terms.first_load[0]) == pytest.approx(load, abs=1e-6)


def test_scalar_equals_batched_where_the_lift_binds(firesim_arch):
    p = Problem("t", 96, 160, 72)
    b = MapSpace(firesim_arch, p).sample(400, seed=5)
    costs = matmul_agrees(firesim_arch, p, b, 10)
    fast = [model.evaluate(with_dram(firesim_arch, 16.0), p, b[i]) for i in range(0, 400, 10)]
    assert any(c.exposed_transfer_cycles > f.exposed_transfer_cycles for c, f in zip(costs, fast))
    conv_agrees(firesim_arch, conv_problem(ConvShape(n=1, k=48, c=24, p=10, q=10, r=3, s=3, stride=1, padding=1)))


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_optimal_equals_exhaustive_where_the_lift_binds(gemmini, objective):
    arch = with_dram(small_arch(gemmini, 1), 2.0)  # memory at 2 B/cycle: the first load dominates small layers
    for shape in ((7, 5, 13), (16, 23, 6), (4, 40, 9)):
        p = Problem("t", *shape)
        opt = optimal_matches_exhaustive(arch, p, objective)
        fast = model.evaluate(with_dram(arch, 16.0), p, opt.mapping)
        assert opt.cost.exposed_transfer_cycles > fast.exposed_transfer_cycles  # the lift binds on the optimum
