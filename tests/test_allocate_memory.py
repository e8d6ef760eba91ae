"""The L2's write-allocate traffic in the memory's time (``l2.allocate_through_memory``, gemmap/warm.py
"Write-allocate through the memory"): the line counts and cycles by hand for a matmul and a conv
(fetched once; re-fetched with and without the memory-side cache keeping them), exactly that much
more DRAM time in the model, scalar = batched, and optimal = exhaustive where it binds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gemmap import convmodel, dma, model
from gemmap.conv import ORDER_INDEX, ConvMapping, ConvShape, conv_shape
from gemmap.convspace import ConvMapSpace
from gemmap.mapspace import MapSpace
from gemmap.workload import Problem
from tests.agree import matmul_agrees, optimal_matches_exhaustive
from tests.test_convspace import conv_problem
from tests.test_mapspace import small_arch
from tests.test_memory_cache import HIT, MISS, clean, with_dram


def switched_off(arch):
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, allocate_through_memory=False))


def with_l2(arch, **fields):
    return dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, **fields))


def conv_allocate(arch, p, T, n, order):
    """convmodel.allocate_memory_cycles of tiles ``T`` under ``order``, from their re-fetch lines."""
    shape = conv_shape(p, arch)
    lines, footprint = convmodel.refetch_lines(arch, shape, T, n, order)
    return convmodel.allocate_memory_cycles(arch, p, shape, T[:, 3], lines, footprint)


def test_fetch_lines_by_hand(firesim_arch):
    mib = 1 << 20  # larger than the 512 KiB L2
    got = dma.allocate_fetch_lines(firesim_arch, np.array([16, 32, 63, 64, 128]), mib)
    assert got.tolist() == [mib // 64] * 3 + [0, 0]  # rows narrower than a line fetch every line once
    assert not dma.allocate_fetch_lines(firesim_arch, np.array([16]), 512 * 1024).any()  # fits the L2
    assert not dma.allocate_fetch_lines(with_l2(firesim_arch, write_allocate=False), np.array([16]), mib).any()


def test_matmul_by_hand_and_in_the_model(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_memory_cache.py)
    # C is 1024 x 1024 int8 = 1 MiB: 16,384 lines, each fetched once at the hit rate when C's rows
    # are narrower than a line (the line's miss of the memory-side cache is C's compulsory bytes', in
    # warm.cache_miss_cycles: the write-back after the fetch hits)
    p = Problem("t", 1024, 64, 1024)
    got = model.allocate_memory_cycles(firesim_arch, p, np.array([16, 48, 64]))
    assert got[0] == got[1] == pytest.approx(16384 * 64 / HIT)
    assert got[2] == 0.0
    assert not model.allocate_memory_cycles(switched_off(firesim_arch), p, np.array([16])).any()
    batch = MapSpace(firesim_arch, p).sample(400, seed=3)
    narrow = [m for m in batch if m.local[2] < 64][:3]
    wide = [m for m in batch if m.local[2] >= 64][:3]
    assert narrow and wide
    for m in narrow + wide:
        on, off = model.evaluate(firesim_arch, p, m), model.evaluate(switched_off(firesim_arch), p, m)
        extra = float(model.allocate_memory_cycles(firesim_arch, p, np.array([m.local[2]]))[0])
        assert on.dram_bytes == off.dram_bytes  # the bytes stay the DMA's; their time grows
        assert on.dram_cycles - off.dram_cycles == pytest.approx(extra, rel=1e-12)
        assert on.cycles >= off.cycles
    assert any(model.evaluate(firesim_arch, p, m).dram_cycles > model.evaluate(switched_off(firesim_arch), p, m).dram_cycles for m in narrow)  # fmt: skip


def test_conv_refetches_by_hand(firesim_arch):
    firesim_arch = clean(firesim_arch)  # the miss rate alone (dirty victims: tests/test_memory_cache.py)
    # C16 K64 32x32 3x3 (pad 1), a 48 KiB L2, k tiles of 16 (4 of them) outermost: the output is
    # 32 x 32 x 64 B = 64 KiB, 1,024 lines, each written in 16-byte rows (fetched once at the hit
    # rate). One k iteration touches an output line per pixel (65,536 B), the input window
    # (the image's 32 x 32 pixels, a line each: 65,536 B) and its weights (9 x 16 rows, a line each:
    # 9,216 B): 140,288 B > 48 KiB, so every k slice fetches and writes back its 1,024 lines again: 4,096
    # lines, 3,072 beyond the distinct ones.
    arch = with_l2(firesim_arch, kib=48)
    shape = ConvShape(n=1, k=64, c=16, p=32, q=32, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    m = ConvMapping(tile=(1, 8, 32, 16, 3, 3, 16), order="kbpqrsc")
    T, n = np.array([m.tile]), np.array([[1, 4, 1, 4, 1, 1, 1]])
    order = np.array([ORDER_INDEX[m.order]])
    lines, footprint = convmodel.refetch_lines(arch, conv_shape(p, arch), T, n, order)
    assert (int(lines[0]), int(footprint[0])) == (4096, 65536 + 65536 + 9216)
    # the 4 MiB memory-side cache keeps all of 140,288 B (under one line a set): re-fetches at the hit rate
    got = conv_allocate(arch, p, T, n, order)
    assert float(got[0]) == pytest.approx(1024 * 64 / HIT + 3072 * 64 * 2 / HIT)
    # a 64 KiB cache keeps none of it: each re-fetch misses it too
    small = with_dram(arch, cache_kib=64, cache_ways=2)
    got = conv_allocate(small, p, T, n, order)
    assert float(got[0]) == pytest.approx(1024 * 64 / HIT + 3072 * 64 * (2 / HIT + 1 / MISS - 1 / HIT))
    # in the model: exactly that much more memory time, the same bytes
    on, off = convmodel.evaluate_conv(small, p, m), convmodel.evaluate_conv(switched_off(small), p, m)
    assert on.dram_bytes == off.dram_bytes
    assert on.dram_cycles - off.dram_cycles == pytest.approx(float(got[0]), rel=1e-12)
    # the output-channel loop innermost: one tile touches 8 x 32 output lines, 10 x 32 input pixels
    # and the weights, 46,080 B < 48 KiB: no re-fetches, the output's lines fetched once
    inner = ConvMapping(tile=m.tile, order="bpqrsck")
    got = conv_allocate(arch, p, T, n, np.array([ORDER_INDEX[inner.order]]))
    assert float(got[0]) == pytest.approx(1024 * 64 / HIT)
    # an L2 larger than the output (96 KiB) but not than one k iteration: the output is not fetched
    # for being larger than the L2, but the first slice still fetches the lines the later ones re-fetch
    big = with_l2(firesim_arch, kib=96)
    assert convmodel.refetch_lines(big, conv_shape(p, big), T, n, order)[0][0] == 4096
    assert not dma.allocate_fetch_lines(big, np.array([16]), 65536).any()
    got = conv_allocate(big, p, T, n, order)
    assert float(got[0]) == pytest.approx(1024 * 64 / HIT + 3072 * 64 * 2 / HIT)


def test_each_output_line_misses_the_cache_once(firesim_arch):
    # the cold run's misses of C's lines are in cache_miss_cycles (C's compulsory bytes); the fetch
    # adds only its hit-rate time, warm or cold, victims or not
    p = Problem("t", 1024, 64, 1024)
    for arch in (firesim_arch, with_l2(firesim_arch, warm_start=True), clean(firesim_arch)):
        m = next(m for m in MapSpace(arch, p).sample(400, seed=3) if m.local[2] < 64)
        on, off = model.evaluate(arch, p, m), model.evaluate(switched_off(arch), p, m)
        assert on.dram_cycles - off.dram_cycles == pytest.approx(16384 * 64 / HIT, rel=1e-12)


def test_scalar_equals_batched(firesim_arch):
    # memory at 0.7 B/cycle, so that the memory floor, where the term goes, binds
    slow = with_dram(firesim_arch, bytes_per_cycle=0.7, miss_bytes_per_cycle=0.5)
    arch = with_l2(slow, kib=16)
    p = Problem("t", 300, 64, 200)  # C 60 KB > 16 KiB
    batch = MapSpace(arch, p).sample(120, seed=5)
    matmul_agrees(arch, p, batch, 10)
    changed = model.evaluate_batch(arch, p, batch).cycles != model.evaluate_batch(switched_off(arch), p, batch).cycles
    assert changed.any()
    arch = with_l2(slow, kib=8)
    cp = conv_problem(ConvShape(n=1, k=64, c=16, p=16, q=16, r=3, s=3, stride=1, padding=1))  # output 16 KiB
    batch = ConvMapSpace(arch, cp).sample(400, seed=2)
    got = conv_allocate(arch, cp, batch.tile, convmodel.tile_terms(arch, cp, batch.tile).n, batch.order)
    assert got.min() > 0 and got.max() > got.min()  # every output line fetched; re-fetched under some orders
    on = convmodel.evaluate_conv_batch(arch, cp, batch)
    assert (on.cycles != convmodel.evaluate_conv_batch(switched_off(arch), cp, batch).cycles).any()
    for i in range(0, len(batch), 20):
        c = convmodel.evaluate_conv(arch, cp, batch[i])
        assert (c.cycles, c.energy_pj, c.dram_bytes) == (on.cycles[i], on.energy_pj[i], on.dram_bytes[i])


@pytest.mark.parametrize("objective", ["latency", "edp"])
def test_optimal_equals_exhaustive_where_it_binds(gemmini, firesim_arch, objective):
    # a 4x4 array, a 1 KiB cache L2 that write-allocates, memory at 1 B/cycle: C's fetches bind
    arch = with_dram(small_arch(gemmini, 1), bytes_per_cycle=1.0)
    arch = with_l2(arch, ways=2, line_bytes=64)
    p = Problem("t", 48, 5, 40)  # C 1,920 B
    assert model.allocate_memory_cycles(arch, p, np.array([4])).any()
    optimal_matches_exhaustive(arch, p, objective)
    conv_arch = with_dram(with_l2(firesim_arch, kib=1), bytes_per_cycle=1.0, cache_kib=8, miss_bytes_per_cycle=0.25)
    cp = conv_problem(ConvShape(n=1, k=32, c=16, p=8, q=8, r=1, s=1, stride=1, padding=0))  # output 2 KiB
    opt = optimal_matches_exhaustive(conv_arch, cp, objective)
    assert opt.cost.dram_cycles > convmodel.evaluate_conv(switched_off(conv_arch), cp, opt.mapping).dram_cycles
