"""The DMA's cycles per byte (gemmap/dma.py), pinned by hand on Gemmini's 128-bit bus, 64-byte requests,
16 requests in flight and a 30-cycle round trip (arch/gemmini.yaml)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap import convmodel, dma
from gemmap.conv import ConvShape
from gemmap.errors import GemmapError


def with_dim(arch, dim):
    return dataclasses.replace(arch, pe_array=dataclasses.replace(arch.pe_array, rows=dim, cols=dim))


def test_commands_in_flight_follow_the_array_size(gemmini):
    # LoadController.scala L84 / StoreController.scala L141: max_in_flight_mem_reqs / DIM + 1.
    assert gemmini.dma.max_in_flight == 16
    assert [dma.commands_in_flight(with_dim(gemmini, d)) for d in (4, 8, 16, 32, 64)] == [5, 3, 2, 1, 1]


def test_read_row_by_hand(gemmini):
    # A 64-byte row at a 64-byte stride: 4 beats of 16 B on the 16 B/cycle bus (4 cycles) against one
    # request in the 16-request window (30 / 16 = 1.875 cycles): 4 cycles, 1/16 cycle per byte. At DIM 16
    # two commands are tracked, so a command's round trip overlaps the next one's requests.
    assert gemmini.dram.latency_cycles == 30
    assert float(dma.read_cycles_per_byte(gemmini, 64, 64, rows=16, element_bytes=1)) == pytest.approx(1 / 16)


def test_one_command_in_flight_exposes_its_round_trip(gemmini):
    # DIM 32: one command at a time, so each command's 30-cycle round trip is paid once: a tile moving
    # 32 rows of 64 B in one command adds 30 / (32 · 64) per byte; 40 rows go in two commands of 20 rows
    # on average (30 / (20 · 64)); a 128-byte row is split into 64-byte column commands (max_block_len
    # blocks of DIM bytes = 64 B), so it also adds 30 / (rows · 64).
    big = with_dim(gemmini, 32)
    base = 1 / 16
    assert float(dma.read_cycles_per_byte(big, 64, 64, rows=32, element_bytes=1)) == pytest.approx(base + 30 / 2048)
    assert float(dma.read_cycles_per_byte(big, 64, 64, rows=40, element_bytes=1)) == pytest.approx(base + 30 / 1280)
    assert float(dma.read_cycles_per_byte(big, 128, 128, rows=32, element_bytes=1)) == pytest.approx(base + 30 / 2048)
    # Writes do not: the store controller counts a mvout row done when it is read out of the accumulator
    # (Scratchpad.scala L695-699), not when memory acknowledges it. A 32-byte output row gathers its 2
    # beats, then sends them: 2·2 − 1 = 3 cycles against the window's 1.875, at any DIM.
    assert float(dma.write_cycles_per_byte(big, 32, 32, tensor_bytes=0)) == pytest.approx(3 / 32)
    assert float(dma.write_cycles_per_byte(gemmini, 32, 32, tensor_bytes=0)) == pytest.approx(3 / 32)


def test_request_walk_by_hand():
    # DMA.scala L180-201 / L420-470: at each address the aligned 16/32/64-byte request that moves the most
    # bytes left, the smaller on a tie; a request fetches all its beats.
    walk = functools.partial(dma.packet_costs, 16, 64)
    assert walk(0, 64) == (4, 1)
    assert walk(16, 48) == (4, 1)  # one 64-byte request, its first beat unused
    assert walk(16, 32) == (4, 1)  # 16..47: a 64-byte request moves all 32, a 32-byte one only 16
    assert walk(32, 48) == (3, 2)  # 32..63 in a 32-byte request, then 16 bytes
    assert walk(48, 48) == (3, 2)  # 48..63: 16 bytes whatever the size (tie: 16), then 64..95 in 32
    assert walk(56, 16) == (2, 2)  # 8 + 8 bytes on each side of a 64-byte boundary
    assert walk(8, 8) == (1, 1)


@given(st.integers(0, 63), st.integers(1, 64))
def test_request_walk_bounds(offset, width):
    # Never fewer beats than the 16-byte beats the bytes touch, nor fewer requests than the 64-byte blocks
    # they touch; never more requests than beats.
    beats, reqs = dma.packet_costs(16, 64, offset, width)
    assert beats >= (offset % 16 + width - 1) // 16 + 1
    assert reqs >= (offset + width - 1) // 64 + 1
    assert reqs <= beats <= 4 * reqs


def test_tile_offsets_set_row_alignment(gemmini):
    # A tile's rows start at j·w + i·s bytes (tile j of width w, row i at stride s), so a 48-byte-wide tile
    # of a 256-byte-wide tensor starts at offsets 0, 16, 32, 48 mod 64 (gcd(256, 48, 64) = 16): 4, 4, 3, 3
    # beats and 1, 1, 2, 2 requests (test_request_walk_by_hand) → max(3.5 cycles on the bus,
    # 1.5 · 30 / 16 = 2.8125 in the window) = 3.5 / 48 per byte.
    assert float(dma.read_cycles_per_byte(gemmini, 48, 256, rows=16, element_bytes=1)) == pytest.approx(3.5 / 48)
    # A 40-byte tile at the same stride starts at multiples of 8 (gcd(256, 40, 64) = 8): the mean walk over
    # the offsets o = 0, 8, …, 56.
    walks = np.array([dma.packet_costs(16, 64, o, 40) for o in range(0, 64, 8)])
    beats, reqs = walks.mean(axis=0)
    expected = max(beats, reqs * 30 / 16) / 40
    assert float(dma.read_cycles_per_byte(gemmini, 40, 256, rows=16, element_bytes=1)) == pytest.approx(expected)
    # A tile as wide as its tensor (w = s = 256) starts aligned: 16 beats, 4 requests, 1/16 cycle per byte.
    assert float(dma.read_cycles_per_byte(gemmini, 256, 256, rows=16, element_bytes=1)) == pytest.approx(1 / 16)


def test_conv_input_commands_span_gemmini_window_columns(gemmini):
    # LoopConv moves a tile's input one input row per command: icols = ocols·stride + (kcols − 1)·dilation
    # pixels (gemmini.h icols_), here 3·2 + 2 = 8 pixels of 8 channels. An 8-byte row at an 8-byte stride
    # starts at offsets 0, 8, ... 56: one beat (1 cycle) and one request (30 / 16 = 1.875) → 1.875 / 8
    # per byte; at DIM 32 the command's round trip adds 30 / (8 · 8).
    big = with_dim(gemmini, 32)
    shape = ConvShape(n=1, k=64, c=8, p=7, q=7, r=3, s=3, stride=2, padding=1)
    a = convmodel.dma_rates(big, shape, np.array([64]), np.array([8]), np.array([3]), np.array([3]))[0]
    assert float(a[0]) == pytest.approx(1.875 / 8 + 30 / 64)


def test_searches_stay_proven_with_one_command_in_flight(gemmini):
    # At DIM 32 each command's round trip is exposed; the GEMM and conv searches' bounds use the same
    # per-tile DMA rates, so their optima stay proven and no random mapping beats them.
    from gemmap.search import SearchOptions, find_mapping
    from gemmap.workload import Problem

    big = with_dim(gemmini, 32)
    assert dma.commands_in_flight(big) == 1
    shape = ConvShape(n=1, k=64, c=32, p=8, q=8, r=3, s=3, padding=1)
    for p in (Problem("mm", 96, 256, 200), Problem("cv", *shape.gemm(), op="conv", conv=shape)):
        opt = find_mapping(big, p, SearchOptions(objective="latency"))
        rnd = find_mapping(big, p, SearchOptions(method="random", objective="latency", samples=2000, seed=4))
        assert opt.proven_optimal and opt.cost.cycles <= rnd.cost.cycles


def test_write_allocate_of_partial_output_lines(firesim_arch):
    # The FireSim L2 (512 KiB, 8-way, 64-byte lines) fetches a line before a Put of less than a line that
    # misses, and writes it back later. An 802,816-byte output (112 × 112 pixels of 64 int8 channels, larger
    # than the L2) in 16-byte rows: every 64-byte line fetched and written back, 2 · 64 / 7.111 = 18 cycles
    # per 64 useful bytes, whatever the stride (96-byte pixels: 1.5 lines each; 32-byte ones: half a line).
    arch = firesim_arch
    assert arch.l2.bytes == 512 * 1024 and arch.dram.bytes_per_cycle == pytest.approx(64 / 9, rel=1e-3)
    big = 112 * 112 * 64
    per_byte = 2 / arch.dram.bytes_per_cycle
    assert float(dma.write_allocate_cycles_per_byte(arch, 16, big)) == pytest.approx(per_byte)
    # It sets the store rate: the DMA alone takes max(2·1 − 1 = 1 cycle to send a 16-byte row, one write in
    # the 16-request window of 30-cycle round trips: 1.875) per 16 bytes.
    for stride in (64, 96, 32):
        assert float(dma.write_cycles_per_byte(arch, 16, stride, tensor_bytes=big)) == pytest.approx(per_byte)
    assert float(dma.write_cycles_per_byte(arch, 16, 64, tensor_bytes=0)) == pytest.approx(1.875 / 16)
    # Not for whole-line rows, an output the L2 can hold, or an L2 that is not a set-associative cache
    # (arch/gemmini.yaml has none; a study's explicit L2 buffer has no ways), or with the switch off.
    assert float(dma.write_allocate_cycles_per_byte(arch, 64, big)) == 0.0
    assert float(dma.write_allocate_cycles_per_byte(arch, 16, 512 * 1024)) == 0.0
    buffer = dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, ways=None))
    off = dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, write_allocate=False))
    assert float(dma.write_allocate_cycles_per_byte(buffer, 16, big)) == 0.0
    assert float(dma.write_allocate_cycles_per_byte(off, 16, big)) == 0.0


def with_alignment(arch, align):
    return dataclasses.replace(arch, software=dataclasses.replace(arch.software, tensor_align_bytes=align))


def test_an_8_byte_aligned_base_averages_16_byte_rows_over_its_offsets(gemmini):
    # 16-byte rows (a 16-channel tile of a 256-channel tensor) start at 0, 16, 32, 48 mod 64 from an
    # aligned base: one 16-byte request of one beat each. From a base only 8 bytes aligned they also
    # start at 8 (a 32-byte request: 2 beats), 24 (a 64-byte one: 4 beats), 40 (32 bytes: 2 beats) and
    # 56 (two 16-byte requests, ties going to the smaller: 2 beats): 14 / 8 beats and 9 / 8 requests on
    # average, so the window (9/8 · 30/16) binds over the bus (14/8 cycles).
    aligned = float(dma.read_cycles_per_byte(gemmini, 16, 256, rows=16, element_bytes=1))
    assert aligned == pytest.approx(30 / 16 / 16)
    loose = with_alignment(gemmini, 8)
    assert float(dma.read_cycles_per_byte(loose, 16, 256, rows=16, element_bytes=1)) == pytest.approx(
        max(14 / 8, 9 / 8 * 30 / 16) / 16
    )
    # 8-byte rows from an 8-byte aligned base never cross a beat: one 16-byte request each, as aligned
    for arch in (gemmini, loose):
        assert float(dma.read_cycles_per_byte(arch, 8, 256, rows=16, element_bytes=1)) == pytest.approx(30 / 16 / 8)
    # a base aligned to a request is the default; 16-byte alignment adds no offset to 16-byte rows
    assert float(dma.read_cycles_per_byte(with_alignment(gemmini, 16), 16, 256, rows=16, element_bytes=1)) == aligned
    with pytest.raises(GemmapError, match="tensor_align_bytes"):
        with_alignment(gemmini, 24).checked("x.yaml")


def test_chunk_table_is_the_mean_request_walk():
    # The tables the rates read are the request walk averaged over the offsets a row's alignment allows.
    beats, reqs = dma._chunk_table(16, 64, True)
    for g in (1, 2, 8, 16, 32, 64):
        for c in (1, 7, 16, 33, 48, 64):
            walks = np.array([dma.packet_costs(16, 64, o, c) for o in range(0, 64, g)])
            assert (beats[g * 65 + c], reqs[g * 65 + c]) == pytest.approx(tuple(walks.mean(axis=0)))
    # Without the walk (dma.request_walk off): only the touched beats and 64-byte blocks.
    beats, reqs = dma._chunk_table(16, 64, False)
    assert (beats[16 * 65 + 48], reqs[16 * 65 + 48]) == (3.0, 1.5)


def test_arch_refuses_dma_sizes_the_walk_cannot_take(firesim_arch):
    for beat, req in ((16, 96), (24, 64), (128, 64)):
        bad = dataclasses.replace(
            firesim_arch, dma=dataclasses.replace(firesim_arch.dma, beat_bytes=beat, request_bytes=req)
        )
        with pytest.raises(GemmapError, match="powers of two"):
            bad.checked("x.yaml")


def test_write_allocate_in_conv_and_gemm_models(firesim_arch):
    # A conv whose 16-channel output rows miss: its stores run at the write-allocate rate, scalar = batched;
    # the GEMM model charges the same rate to its C rows (Tn bytes at stride N).
    from gemmap import model
    from gemmap.conv import ConvMapping, ConvMappingBatch
    from gemmap.mapping import Mapping, MappingBatch
    from gemmap.workload import Problem
    from tests.test_convspace import conv_problem

    arch = firesim_arch
    shape = ConvShape(n=1, k=64, c=16, p=112, q=112, r=1, s=1, stride=1, padding=0)
    p = conv_problem(shape)
    m = ConvMapping((1, 8, 112, 16, 1, 1, 16))
    rates = convmodel.dma_rates(arch, shape, *(np.array([x]) for x in (16, 16, 112, 1)))
    assert float(rates[2][0]) == pytest.approx(2 / arch.dram.bytes_per_cycle)
    c = convmodel.evaluate_conv(arch, p, m)
    b = convmodel.evaluate_conv_batch(arch, p, ConvMappingBatch.from_mappings([m]))
    assert (b.cycles[0], b.energy_pj[0]) == (c.cycles, c.energy_pj)
    store = shape.output_elems * 2 / arch.dram.bytes_per_cycle  # every output byte at 2 / 7.111 cycles
    assert c.local_transfer_cycles >= store
    gemm = Problem("mm", 12544, 16, 64)
    maps = [
        Mapping("ws", (128, 16, tn), (1, 1, 1), o, o, db_spad=True, db_acc=True)
        for tn in (16, 64)
        for o in ("MNK", "NMK")
    ]
    batch = model.evaluate_batch(arch, gemm, MappingBatch.from_mappings(maps))
    for i, mp in enumerate(maps):  # scalar = batched with the write-allocate rate
        one = model.evaluate(arch, gemm, mp)
        assert (batch.cycles[i], batch.energy_pj[i]) == (one.cycles, one.energy_pj)
    rates = model.dma_rates(arch, gemm, np.array([[128, 16, 16]]))
    assert float(rates[2][0]) == pytest.approx(2 / arch.dram.bytes_per_cycle)
    mm = Mapping("ws", (128, 16, 16), (1, 1, 1), "MNK", "MNK", db_spad=True, db_acc=True)
    assert model.evaluate(arch, gemm, mm).cycles >= 12544 * 64 * 2 / arch.dram.bytes_per_cycle
