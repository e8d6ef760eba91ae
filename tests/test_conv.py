"""The conv shape, mapping, cost model and tiled_conv_auto rule (gemmap.conv, gemmap.convmodel).

Set-up for the hand counts: Gemmini's defaults (16×16 array, int8 data, int32 partial sums,
16 B/cycle, 256 KiB scratchpad = 16384 rows, 64 KiB accumulator = 1024 rows, no L2).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap import conv, convmodel, model
from gemmap.conv import ConvMapping, ConvMappingBatch, ConvShape
from gemmap.conv_tiler import tiled_conv_auto, tiled_conv_auto_args, tiled_conv_auto_search
from gemmap.errors import GemmapError
from gemmap.mapping import ORDERS as GEMM_ORDERS
from gemmap.mapping import Mapping, MappingBatch
from gemmap.mapping import invalid_reason as gemm_invalid_reason
from gemmap.model import edge_cycles, pipelined
from gemmap.workload import Problem, load_workload
from tests.convloopnest import walk

ROOT = Path(__file__).resolve().parent.parent


def conv_problem(shape: ConvShape, name: str = "t") -> Problem:
    shape.check(name)
    M, K, N = shape.gemm()
    return Problem(name, M, K, N, op="conv", conv=shape)


def walk_on(arch, shape: ConvShape, m: ConvMapping) -> dict[str, int]:
    """The brute-force walk of ``m`` with ``arch``'s array, reloads, tag queue and first-layer switch."""
    return walk(
        shape, m, arch.dim_rows, shape.input_rows, shape.input_cols, arch.software.reload_operands,
        window=arch.pe_array.tag_queue - 1, latency=arch.pe_array.latency_cycles,
        first_layer=arch.software.first_layer_optimizations,
    )  # fmt: skip


def check_against_walk(arch, shape: ConvShape, m: ConvMapping) -> None:
    p = conv_problem(shape)
    c = convmodel.evaluate_conv(arch, p, m)
    w = walk_on(arch, shape, m)
    visits = {tr.tensor: tr.visits for tr in c.traffic if tr.level == "local"}
    assert visits == {"A": w["A"], "B": w["B"], "C": w["C"]}, (shape, m)
    if arch.l2 is not None:  # DRAM → L2: Timeloop residency over the same loops
        w2 = walk(shape, m, arch.dim_rows, shape.input_rows, shape.input_cols, False)
        visits = {tr.tensor: tr.visits for tr in c.traffic if tr.level == "l2"}
        assert visits == {"A": w2["A"], "B": w2["B"], "C": w2["C"]}, (shape, m)
    assert w["macs"] == shape.macs == c.macs
    if arch.pe_array.stationary_overlap:
        exact = w["tile_cycles_exact"]
        if pipelined(arch):  # tiles back to back: the walk's per-tile skew once
            exact -= (w["tiles"] - 1) * edge_cycles(arch, "ws")
        want = float(exact)
    else:
        want = w["tile_cycles_serial"]
    assert c.compute_cycles == want, (shape, m)


# shapes: stride 1 and 2, padding, odd sizes, a downsample, a dilation-2 one, a matmul-like one
SHAPES = [
    ConvShape(n=1, k=3, c=2, p=4, q=4, r=3, s=3, stride=1, padding=1),
    ConvShape(n=2, k=20, c=19, p=5, q=7, r=3, s=3, stride=1, padding=1),
    ConvShape(n=1, k=17, c=5, p=5, q=3, r=3, s=3, stride=2, padding=1, h=9, w=6),
    ConvShape(n=1, k=9, c=3, p=4, q=5, r=5, s=5, stride=2, padding=2, h=8, w=10),
    ConvShape(n=3, k=33, c=18, p=3, q=3, r=1, s=1, stride=2, padding=0, h=6, w=6),  # downsample
    ConvShape(n=1, k=5, c=7, p=3, q=4, r=1, s=1, stride=2, padding=0, h=5, w=7),  # odd input: no downsample
    ConvShape(n=1, k=4, c=3, p=5, q=5, r=3, s=3, stride=1, padding=2, dilation=2),
    ConvShape(n=1, k=40, c=37, p=13, q=1, r=1, s=1),
]


def random_tiles(shape: ConvShape, rng: np.random.Generator) -> tuple[int, ...]:
    return tuple(int(rng.integers(1, d + 1)) for d in shape.dims)


def timeloop_residency(arch):
    """The arch with operand tiles kept while inner loops do not index them (no per-call reloads)."""
    return dataclasses.replace(arch, software=dataclasses.replace(arch.software, reload_operands=False))


@pytest.mark.parametrize("shape", SHAPES, ids=range(len(SHAPES)))
@pytest.mark.parametrize("which", ["gemmini", "timeloop", "l2"])
def test_traffic_and_compute_match_brute_force(gemmini, transformer_arch, shape, which):
    arch = {"gemmini": gemmini, "timeloop": timeloop_residency(gemmini), "l2": transformer_arch}[which]
    rng = np.random.default_rng(len(which) * 1000 + SHAPES.index(shape))
    p = conv_problem(shape)
    checked = 0
    for _ in range(60):
        m = ConvMapping(random_tiles(shape, rng), order=conv.ORDERS[int(rng.integers(len(conv.ORDERS)))])
        if conv.invalid_reason(arch, p, m) is None:
            check_against_walk(arch, shape, m)
            checked += 1
    check_against_walk(arch, shape, ConvMapping((1, 1, 1, 1, 1, 1, 1)))
    check_against_walk(arch, shape, ConvMapping(shape.dims))
    assert checked > 10


def test_compute_matches_brute_force_without_stationary_overlap(gemmini):
    serial = dataclasses.replace(gemmini, pe_array=dataclasses.replace(gemmini.pe_array, stationary_overlap=False))
    rng = np.random.default_rng(5)
    for shape in SHAPES[:4]:
        for _ in range(10):
            m = ConvMapping(random_tiles(shape, rng))
            if conv.invalid_reason(serial, conv_problem(shape), m) is None:
                check_against_walk(serial, shape, m)


def test_small_conv_by_hand(gemmini):
    # 1 image, 2 → 3 channels, 4×4 outputs, 3×3 kernel, stride 1, pad 1, 4×4 input.
    # Tiles (b,p,q,k,r,s,c) = (1,2,4,3,3,3,2): only p is cut, into 2 tiles of 2 rows.
    # Input rows: p-tile 0 starts at 0·1 + 0 − 1 = −1, Gemmini's window is 2·1 + (3−1)·1 = 4 rows
    #   → [−1, 3) ∩ [0, 4) = rows 0,1,2 (3 rows; row −1 is padding, zero-filled, not fetched);
    #   p-tile 1 starts at 2 − 1 = 1 → [1, 5) ∩ [0, 4) = rows 1,2,3 (3 rows). RowSum = 6.
    # Input cols: one q-tile, start −1, 4·1 + 2 = 6 wide → [−1, 5) ∩ [0, 4) = 4 cols. ColSum = 4.
    # Input: 1·2 channels·6·4 = 48 bytes (the real input is 2·4·4 = 32: 16 bytes of halo re-fetch).
    # Only p has > 1 tile and it indexes all but the weights; the weights' relevant loops are all
    # trivial → fetched once: 3·2·3·3 = 54. Outputs: innermost relevant p, no reduction loop
    # above → written once: 3·4·4 = 48. DRAM = 48 + 54 + 48 = 150.
    shape = SHAPES[0]
    p = conv_problem(shape)
    m = ConvMapping((1, 2, 4, 3, 3, 3, 2))
    c = convmodel.evaluate_conv(gemmini, p, m)
    assert c.dram_bytes_by_tensor == {"A": 48, "B": 54, "C": 48}
    assert c.compulsory_dram_bytes == 32 + 54 + 48
    # Compute: per tile, max_pixels_per_row = min(16 // 2, 3) = 3, so one kcol group per krow:
    # ceil(3/16)·3 krows·ceil(3/3)·ceil(2/16) = 3 weight blocks, each streaming 1·2·4 = 8 pixels as
    # 2 output rows of 4: the first request carries the weights and feeds 16 rows, the second
    # max(4, 4) = 4. Back to back, the blocks are the requests 16, 4, 16, 4, …: the tag queue lets
    # request k + 5 in only 32 cycles (the array's latency) after request k's rows went in, at most
    # 16 + 32 = 48 cycles after it started, while the four requests between take at least
    # 4 + 16 + 4 + 16 = 40 cycles to feed plus request k's own 16 or 4 rows: the queue never holds
    # one back (every cycle of the tag chain is at most 52/3 < 20 cycles a block), so a block takes
    # its 20 rows. Per tile 46 + 3·20 = 106 cycles; 2 tiles, the second's skew hidden: 2·106 − 46.
    # (Charging each short request alone (4 + 32) / 5 = 7.2 cycles, as the model once did, gives 185.2.)
    assert c.compute_cycles == 166.0


def test_stride2_window_by_hand():
    # p = 3 output rows, r = 3, stride 2, pad 1, H = 6 ((6 + 2 − 3)//2 + 1 = 3). p-tiles of 2:
    # tile 0: start 0·2 + 0 − 1 = −1, Gemmini's window 2·2 + 2 = 6 rows → [−1, 5) ∩ [0,6) = 5 rows
    #   (the exact window (2−1)·2 + 3 = 5 rows holds 4 image rows: stride − 1 = 1 row over-fetched);
    # tile 1: 1 row, start 2·2 − 1 = 3, 1·2 + 2 = 4 rows → [3, 7) ∩ [0,6) = 3 rows. Sum 8.
    shape = ConvShape(n=1, k=1, c=1, p=3, q=3, r=3, s=3, stride=2, padding=1, h=6, w=6)
    assert shape.window_rows(2, 3) == 5
    assert conv.rows_loaded(shape, 0, 2, 0, 3) == 5
    assert conv.rows_loaded(shape, 2, 1, 0, 3) == 3
    assert conv.window_sum_rows(shape, 2, 3) == 8
    # kernel rows cut in 1s: each (p-tile, r-tile) window is p_e·2 rows from 2·p0 + r0 − 1:
    # (0,0): [−1,3)→3  (0,1): [0,4)→4  (0,2): [1,5)→4  (2,0): [3,5)→2  (2,1): [4,6)→2  (2,2): [5,7)→1
    assert conv.window_sum_rows(shape, 2, 1) == 3 + 4 + 4 + 2 + 2 + 1


def test_conv1_lower_bound_is_on_the_real_tensors(gemmini):
    # conv1: 3 → 64, 7×7 / 2, pad 3, 224×224: input 224·224·3 = 150,528, weights 64·3·7·7 = 9,408,
    # output 112·112·64 = 802,816 → 962,752 B (the im2col GEMM's compulsory is 2.66 MB).
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    p = w.problem("conv1")
    assert p.conv is not None and p.conv.input_rows == 224
    assert convmodel.compulsory_dram_bytes(gemmini, p) == 150_528 + 9_408 + 802_816
    assert convmodel.dram_lower_bound(gemmini, p) == 962_752
    assert model.compulsory_dram_bytes(gemmini, p) == 12544 * 147 + 147 * 64 + 12544 * 64  # 2,663,104
    # a 1×1 stride-2 downsample reads only the pixels it uses: 28·28·256
    down = w.problem("res3a_down")
    assert down.conv.downsample
    assert down.conv.touched_input_elems == 28 * 28 * 256


def test_gemmini_order_keeps_partial_sums_in_the_accumulator(gemmini):
    shape = SHAPES[1]
    p = conv_problem(shape)
    tile = (1, 2, 3, 16, 1, 2, 8)
    gem = convmodel.evaluate_conv(gemmini, p, ConvMapping(tile))
    assert gem.dram_bytes_by_tensor["C"] == shape.output_elems  # written once, int8
    # reduction loops (c, r, s) outermost: every output tile is revisited n_c·n_r·n_s = 3·3·2 = 18 times
    spill = convmodel.evaluate_conv(gemmini, p, ConvMapping(tile, order="crsbpqk"))
    visits = {tr.tensor: tr.visits for tr in spill.traffic}
    assert visits["C"] == 18 * shape.output_elems
    assert spill.dram_bytes_by_tensor["C"] == shape.output_elems + 2 * 4 * 17 * shape.output_elems


def test_matmul_as_conv_agrees_with_the_gemm_model(gemmini, transformer_arch):
    # A matmul is the conv q = M (one output row), c = K, k = N. Two known differences are kept out of the comparison:
    # gemmap.model reloads A and B per call even when an operand has ≤ 2 tiles (tiled_matmul_outer's
    # a_reuse/b_reuse, gemmini.h:783-784, 819-820, keeps those; the conv model keeps them as tiled_conv does),
    # and LoopConvSt writes output rows of ≤ DIM channels where the GEMM model writes Tn (cycles only).
    # The host issues a conv tile with other code than a matmul tile, in a nest of 7 loops, not 3: the same
    # cost per tile for both here, and none per loop step. tiled_conv's dummy bias makes LoopConvLdBias
    # zero-fill each output tile's accumulator rows, which tiled_matmul (no D) does not: off here. The
    # floor of the real tile sequence (gemmap/convseq.py) is the conv model's only: off here too.
    def same_issue(arch):
        sw = dataclasses.replace(arch.software, conv_tile_issue_cycles=arch.software.matmul_tile_issue_cycles,
                                 conv_loop_issue_cycles=0.0, matmul_loop_issue_cycles=0.0,
                                 conv_bias_zero_fill=False, tile_sequence=False)  # fmt: skip
        return dataclasses.replace(arch, software=sw)

    gemmini, transformer_arch = same_issue(gemmini), same_issue(transformer_arch)
    rng = np.random.default_rng(7)
    compared = 0
    for arch in (gemmini, timeloop_residency(gemmini), transformer_arch):
        reload = arch.software.reload_operands
        for shape in ((32, 32, 32), (17, 33, 65), (300, 70, 130), (1, 2048, 1000)):
            p = Problem("mm", *shape)
            n = 0
            while n < 40:
                T = tuple(int(rng.integers(1, d + 1)) for d in shape)
                m = Mapping("ws", T, dram_order=GEMM_ORDERS[int(rng.integers(6))], db_spad=bool(rng.random() < 0.5),
                            db_acc=bool(rng.random() < 0.5))  # fmt: skip
                if gemm_invalid_reason(arch, p, m) is not None:
                    continue
                n += 1
                n1 = [-(-d // x) for d, x in zip(shape, T)]
                a_kept = n1[0] * n1[1] <= 2 and n1[2] > 1  # A in ≤ 2 tiles, yet N iterates: the GEMM model reloads it
                b_kept = n1[1] * n1[2] <= 2 and n1[0] > 1
                if reload and (a_kept or b_kept):
                    continue
                cm = ConvMapping.from_gemm(m)
                assert conv.invalid_reason(arch, p, cm) is None
                a, b = model.evaluate(arch, p, m), convmodel.evaluate_conv(arch, p, cm)
                assert b.traffic == a.traffic, (arch.name, shape, m)
                assert b.dram_bytes_by_tensor == a.dram_bytes_by_tensor
                assert b.compute_cycles == a.compute_cycles
                assert b.dram_bytes_lower_bound == a.dram_bytes_lower_bound
                if T[2] <= arch.dim_cols:
                    assert b.cycles == a.cycles
                    assert b.energy_pj == pytest.approx(a.energy_pj, rel=1e-12)
                    assert b.energy_breakdown == pytest.approx(a.energy_breakdown, rel=1e-12)
                    ga = model.evaluate_batch(arch, p, MappingBatch.from_mappings([m]))
                    gb = convmodel.evaluate_conv_batch(arch, p, ConvMappingBatch.from_mappings([cm]))
                    assert (ga.cycles[0], ga.dram_bytes[0]) == (gb.cycles[0], gb.dram_bytes[0])
                compared += 1
    assert compared > 150


def test_scalar_and_batched_agree_on_thousands(gemmini, transformer_arch):
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    rng = np.random.default_rng(11)
    problems = [w.problem(n) for n in ("conv1", "res2_3x3", "res3a_3x3", "res3a_down", "res5_3x3", "fc")]
    problems += [conv_problem(s) for s in SHAPES]
    total = 0
    for arch in (gemmini, transformer_arch, timeloop_residency(gemmini)):
        for p in problems:
            b = conv.random_mappings(arch, p, 300, rng)
            bc = convmodel.evaluate_conv_batch(arch, p, b)
            for i in range(len(b)):
                c = convmodel.evaluate_conv(arch, p, b[i])
                got = (bc.cycles[i], bc.energy_pj[i], bc.dram_bytes[i], bc.compute_cycles[i])
                assert got == (c.cycles, c.energy_pj, c.dram_bytes, c.compute_cycles), (p.name, b[i])
            total += len(b)
    assert total >= 3000


def test_valid_mask_matches_invalid_reason(gemmini):
    rng = np.random.default_rng(3)
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    for p in (w.problem("conv1"), w.problem("res4_3x3"), conv_problem(SHAPES[2])):
        shape = conv.conv_shape(p)
        ms = [
            ConvMapping(random_tiles(shape, rng), db_spad=bool(rng.random() < 0.5), db_acc=bool(rng.random() < 0.5))
            for _ in range(300)
        ]
        mask = conv.valid_mask(gemmini, p, ConvMappingBatch.from_mappings(ms))
        assert list(mask) == [conv.invalid_reason(gemmini, p, m) is None for m in ms]


def test_validity_reasons(gemmini):
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    p = w.problem("res2_3x3")
    assert "weight-stationary" in conv.invalid_reason(gemmini, p, ConvMapping((1, 8, 8, 16, 3, 3, 16), dataflow="os"))
    # acc 1·23·23 = 529 rows, doubled 1058 > 1024
    assert "accumulator" in conv.invalid_reason(gemmini, p, ConvMapping((1, 23, 23, 16, 1, 1, 1)))
    # input 4·58·58 = 13456 + weights 576 rows, doubled > 16384
    assert "scratchpad" in conv.invalid_reason(gemmini, p, ConvMapping((1, 56, 56, 16, 3, 3, 64)))
    assert "outside" in conv.invalid_reason(gemmini, p, ConvMapping((1, 57, 1, 1, 1, 1, 1)))
    assert "permutation" in conv.invalid_reason(gemmini, p, ConvMapping((1, 1, 1, 1, 1, 1, 1), order="bpqkrsq"))
    # capacity in Gemmini's row layout: (1,22,23,16,3,3,64): input ceil(64/16)·1·24·25 = 2400 rows,
    # weights ceil(16/16)·3·3·64 = 576 → 2976 (×2 double-buffered ≤ 16384); acc 1·22·23 = 506 (×2 ≤ 1024)
    m = ConvMapping((1, 22, 23, 16, 3, 3, 64))
    assert conv.spad_rows_needed(gemmini, p.conv, m.tile) == 2976
    assert conv.acc_rows_needed(gemmini, m.tile) == 506
    assert conv.invalid_reason(gemmini, p, m) is None
    # single-buffered may use the whole accumulator: 1·32·32 = 1024 rows
    big = ConvMapping((1, 32, 32, 16, 3, 3, 16), db_acc=False)
    assert conv.invalid_reason(gemmini, p, big) is None
    assert "accumulator" in conv.invalid_reason(gemmini, p, dataclasses.replace(big, db_acc=True))


def test_mapping_text_and_json(gemmini):
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    p = w.problem("res5_3x3")
    m = tiled_conv_auto(gemmini, p)
    d = m.to_dict(gemmini, p)
    assert d["tiled_conv_args"] == {"batches": 1, "porows": 7, "pocols": 7, "pochs": 112, "krows": 3, "kcols": 3,
                                    "kchs": 119}  # fmt: skip
    assert d["loop_order"] == "bpqkrsc" and d["dataflow"] == "ws"
    nest = m.loop_nest(gemmini, p)
    assert "tiled_conv(batches=1, porows=7, pocols=7, pochs=112, krows=3, kcols=3, kchs=119)" in nest
    assert "for k0 in [0:5)" in nest and "for c0 in [0:5)" in nest
    assert m.summary(gemmini) == "ws conv b1 p7 q7 k112 r3 s3 c119 bpqkrsc db"


# --- tiled_conv_auto --------------------------------------------------------------------


def test_tiled_conv_auto_rule_on_three_resnet_layers(gemmini):
    # Budgets: 16384/2 = 8192 scratchpad rows, 1024/2 = 512 accumulator rows, DIM = 16.
    # args = [batches, porows, pocols, pochs, krows, kcols, kchs].
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    #
    # res5_3x3: C=K=512, 7×7 outputs, 3×3, pad 1. Start [1,7,7,512,3,3,512]:
    #   spad = ceil(kchs/16)·9·9 + ceil(pochs/16)·9·kchs, acc = ceil(pochs/16)·49.
    #   Shrink: the largest args are always pochs/kchs (≥ 112 > 7); ties go to pochs (first), so
    #   they alternate down by 16: with x = pochs/16 and y = kchs/16, spad = 81y + 144xy.
    #   (8,8): 648 + 9216 ✗ → pochs: (7,8): 648 + 8064 = 8712 ✗ → kchs: (7,7): 567 + 7056 = 7623 ✓,
    #   acc 7·49 = 343 ✓ → [1,7,7,112,3,3,112]. Grow pocols: 8 > Q. Grow all: batches/porows/
    #   pocols/krows/kcols at their maxima; pochs 113 → 8 blocks: 8·9·112 + 7·81 = 8631 ✗;
    #   kchs k: 63k + 81·ceil(k/16) ≤ 8192 holds up to k = 119 (7497 + 648 = 8145; 120 → 8208 ✗).
    #   → [1,7,7,112,3,3,119].
    assert tiled_conv_auto_args(gemmini, w.problem("res5_3x3").conv) == (1, 7, 7, 112, 3, 3, 119)
    #
    # res5_1x1a: C=2048 → K=512, 7×7, 1×1. Start [1,7,7,512,1,1,2048]:
    #   spad = 49·ceil(kchs/16) + ceil(pochs/16)·kchs, acc = 49·ceil(pochs/16).
    #   Shrink: kchs is largest, −16 at a time down to 512; then pochs/kchs alternate (pochs first):
    #   with x, y blocks spad = 49y + 16xy: (21,21) = 8085 fits the scratchpad but acc 21·49 > 512;
    #   acc needs x ≤ 10: (11,11) ✗ → pochs: (10,11): acc 490 ✓, spad 539 + 1760 ✓ → [1,7,7,160,1,1,176].
    #   Grow all: pochs 161 → 11 blocks, acc 539 ✗; kchs k: 10k + 49·ceil(k/16) ≤ 8192 up to
    #   k = 624 (6240 + 1911 = 8151; 625 → 6250 + 1960 = 8210 ✗). → [1,7,7,160,1,1,624].
    assert tiled_conv_auto_args(gemmini, w.problem("res5_1x1a").conv) == (1, 7, 7, 160, 1, 1, 624)
    #
    # res2_3x3: C=K=64, 56×56, 3×3, pad 1. Start [1,56,56,64,3,3,64]:
    #   spad = ceil(kchs/16)·(porows+2)(pocols+2) + ceil(pochs/16)·9·kchs, acc = ceil(pochs/16)·porows·pocols.
    #   Shrink: pochs 64→48, kchs 64→48, then porows/pocols alternate down 56→48; at the 48-tie
    #   porows, pocols → 47, pochs → 32, kchs → 32; alternate 47→32 (acc 2·pr·pc still > 512);
    #   at the 32-tie porows, pocols → 31, pochs → 16, kchs → 16; now acc = pr·pc:
    #   (31,31) 961 … (23,23) 529 ✗ → porows (22,23): 506 ✓, spad 24·25 + 9·16 = 744 ✓.
    #   Grow pocols: 24 → 528 ✗. Grow all: porows 23 ✗ (529), pocols ✗, pochs 17 → 2 blocks ✗,
    #   kchs grows to 64 (4·600 + 9·64 = 2976 ✓). → [1,22,23,16,3,3,64].
    assert tiled_conv_auto_args(gemmini, w.problem("res2_3x3").conv) == (1, 22, 23, 16, 3, 3, 64)


def test_tiled_conv_auto_search_counts_its_checks_by_hand(gemmini):
    # res5_1x1a (derivation above): the first sizing, then kchs 2048 → 512 in steps of 16 (96 steps) and
    # pochs / kchs alternating from 32 / 32 blocks down to 10 / 11 (22 + 21 steps): 1 + 139 = 140 shrink
    # checks. pocols is already Q, so the pocols phase checks nothing; each grow-all sweep checks pochs
    # (fails) and kchs (passes) while kchs grows 176 → 624 (448 sweeps), and the last sweep fails both:
    # 2·448 + 2 = 898 grow checks.
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    found = tiled_conv_auto_search(gemmini, w.problem("res5_1x1a").conv)
    assert (found.shrink_checks, found.grow_checks) == (140, 898)
    # A conv that fits whole: one sizing, and nothing can grow.
    small = ConvShape(n=1, k=16, c=16, p=4, q=4, r=1, s=1)
    assert tiled_conv_auto_search(gemmini, small) == type(found)(small.dims, 1, 0)


def test_tiled_conv_auto_is_valid_and_fills_half_memory(gemmini):
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    for p in w.problems:
        m = tiled_conv_auto(gemmini, p)
        assert conv.invalid_reason(gemmini, p, m) is None, p.name
        shape = conv.conv_shape(p)
        # maximal: no single arg can grow by one and still fit half of each memory
        for i in range(7):
            t = list(m.tile)
            t[i] += 1
            if t[i] <= shape.dims[i]:
                grown = ConvMapping(tuple(t))  # type: ignore[arg-type]
                assert conv.invalid_reason(gemmini, p, grown) is not None, (p.name, i)


# --- workload YAML ----------------------------------------------------------------------


def _write(tmp_path, op: str) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(f"name: w\nops:\n  - {{name: c1, op: conv, {op}}}\n")
    return path


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ("C: 3, K: 8, P: 4, Q: 4, R: 3, S: 3, stride: 0", "stride"),
        ("C: 3, K: 8, P: 4, Q: 4, R: 3, S: 3, dilation: 0", "dilation"),
        ("C: 3, K: 8, P: 4, Q: 4, R: 3, S: 3, padding: -1", "padding"),
        ("C: 3, K: 8, P: 1, Q: 1, R: 7, S: 7, H: 2, W: 2, padding: 1", "R"),
        ("C: 3, K: 8, P: 5, Q: 4, R: 3, S: 3, padding: 1, H: 4, W: 4", "P=5"),
        ("C: 3, K: 8, P: 1, Q: 1, R: 1, S: 1, padding: 2", "padding"),
    ],
)
def test_bad_conv_fields_are_one_line_errors(tmp_path, fields, needle):
    with pytest.raises(GemmapError) as exc:
        load_workload(_write(tmp_path, fields))
    msg = str(exc.value)
    assert "\n" not in msg and "c1" in msg and needle in msg


def test_resnet50_file_is_consistent_with_224_input():
    w = load_workload(ROOT / "workloads" / "resnet50.yaml")
    convs = [p for p in w.problems if p.conv is not None]
    assert len(convs) == len(w.problems) - 1
    for p in convs:
        s = p.conv
        assert s.padding == (s.r - 1) // 2
        assert s.p == (s.input_rows + 2 * s.padding - s.r) // s.stride + 1
        assert s.gemm() == (p.M, p.K, p.N)
    assert w.problem("conv1").conv.input_rows == 224
    assert w.problem("fc").conv is None


# --- hypothesis invariants ----------------------------------------------------------------


@st.composite
def conv_and_mapping(draw):
    stride = draw(st.sampled_from([1, 2]))
    r = draw(st.integers(1, 4))  # tiled_conv takes one kernel_dim: square kernels, padding < kernel
    pad = draw(st.integers(0, r - 1))
    shape = ConvShape(
        n=draw(st.integers(1, 2)), k=draw(st.integers(1, 40)), c=draw(st.integers(1, 40)),
        p=draw(st.integers(1, 7)), q=draw(st.integers(1, 7)), r=r, s=r, stride=stride, padding=pad,
        dilation=draw(st.sampled_from([1, 1, 2])),
    )  # fmt: skip
    tile = tuple(draw(st.integers(1, d)) for d in shape.dims)
    order = draw(st.permutations(conv.DIMS))
    m = ConvMapping(tile, order="".join(order), db_spad=draw(st.booleans()), db_acc=draw(st.booleans()))
    return shape, m


@given(conv_and_mapping())
def test_invariants(gemmini_arch_for_hypothesis, sm):
    arch = gemmini_arch_for_hypothesis
    shape, m = sm
    if (
        shape.window_rows(shape.p, shape.r) - 2 * shape.padding < 1
        or shape.window_cols(shape.q, shape.s) - 2 * shape.padding < 1
    ):
        return  # all padding, no input: refused by ConvShape.check
    p = conv_problem(shape)
    if conv.invalid_reason(arch, p, m) is not None:
        return
    c = convmodel.evaluate_conv(arch, p, m)
    w = walk_on(arch, shape, m)
    assert w["macs"] == c.macs == shape.macs == p.macs  # MACs conserved (tiles partition the nest)
    visits = {tr.tensor: tr.visits for tr in c.traffic}
    assert visits == {"A": w["A"], "B": w["B"], "C": w["C"]}
    t = arch.datatypes
    assert c.dram_bytes_by_tensor["A"] >= shape.touched_input_elems * t.input_bytes
    assert c.dram_bytes_by_tensor["B"] >= shape.weight_elems * t.weight_bytes
    assert c.dram_bytes_by_tensor["C"] >= shape.output_elems * t.output_bytes
    assert c.dram_bytes >= c.dram_bytes_lower_bound >= c.compulsory_dram_bytes
    b = convmodel.evaluate_conv_batch(arch, p, ConvMappingBatch.from_mappings([m]))
    assert (b.cycles[0], b.energy_pj[0], b.dram_bytes[0], b.compute_cycles[0]) == (
        c.cycles, c.energy_pj, c.dram_bytes, c.compute_cycles,
    )  # fmt: skip


@pytest.fixture(scope="module")
def gemmini_arch_for_hypothesis(gemmini):
    return gemmini


def test_orders_cover_all_permutations():
    assert len(conv.ORDERS) == 5040 and conv.GEMMINI_ORDER in conv.ORDER_INDEX
    assert all(sorted(o) == sorted(conv.DIMS) for o in itertools.islice(conv.ORDERS, 0, 5040, 97))


def test_weight_tiles_that_the_l2_sets_cannot_hold(firesim_arch):
    # The FireSim L2 is a cache of 1,024 sets × 8 ways of 64-byte lines. Weights of K = 1024 int8 output
    # channels put consecutive (kch) rows 1,024 B = 16 lines apart: 1024 / gcd(16, 1024) = 64 sets are
    # reached, 512 lines. A tile of 16 output channels (16-byte rows, 4 per line, none straddling)
    # and 3·3·64 = 576 rows cannot stay; each reload reads a line per row from memory.
    arch = firesim_arch
    assert (arch.l2.sets, arch.l2.ways, arch.l2.line_bytes) == (1024, 8, 64)
    shape = ConvShape(n=1, k=1024, c=64, p=4, q=4, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    spilled = ConvMapping((1, 4, 4, 16, 3, 3, 64))
    c = convmodel.evaluate_conv(arch, p, spilled)
    # one output tile per weight tile (n_b·n_p·n_q = 1 reload each), 64 tiles of K: 9·64 rows · 64 · 64 B
    assert c.dram_bytes_by_tensor["B"] == 9 * 64 * 64 * 64 == 4 * shape.weight_elems
    # 32 input channels: 288 rows fit the 512 lines, so the weights move once, their own bytes
    kept = convmodel.evaluate_conv(arch, p, ConvMapping((1, 4, 4, 16, 3, 3, 32)))
    assert kept.dram_bytes_by_tensor["B"] == shape.weight_elems
    # 64-byte rows fill their lines: nothing to spill
    wide = convmodel.evaluate_conv(arch, p, ConvMapping((1, 4, 4, 64, 3, 3, 64)))
    assert wide.dram_bytes_by_tensor["B"] == shape.weight_elems
    assert not convmodel.weight_tiles_spill(dataclasses.replace(arch, l2=None), shape, 16, 3, 3, 64)


def test_spilling_weights_batched_equals_scalar(firesim_arch):
    arch = firesim_arch
    rng = np.random.default_rng(3)
    shape = ConvShape(n=1, k=1024, c=96, p=6, q=6, r=3, s=3, stride=1, padding=1)
    p = conv_problem(shape)
    ms, spills = [], 0
    while len(ms) < 60:
        tile = [int(rng.integers(1, d + 1)) for d in shape.dims]
        tile[3] = int(rng.choice([8, 16, 32, tile[3]]))  # rows that divide a line, or any width
        tile[6] = int(rng.choice([64, 96, tile[6]]))
        m = ConvMapping(tuple(tile), order="".join(rng.permutation(list(conv.DIMS))))  # type: ignore[arg-type]
        if conv.invalid_reason(arch, p, m) is None:
            ms.append(m)
            spills += bool(convmodel.weight_tiles_spill(arch, shape, tile[3], tile[4], tile[5], tile[6]))
    assert spills > 0
    b = convmodel.evaluate_conv_batch(arch, p, ConvMappingBatch.from_mappings(ms))
    for i, m in enumerate(ms):
        c = convmodel.evaluate_conv(arch, p, m)
        assert (b.cycles[i], b.energy_pj[i], b.dram_bytes[i]) == (c.cycles, c.energy_pj, c.dram_bytes)


def test_bias_zero_fill_costs_one_load_cycle_per_accumulator_row(gemmini):
    # tiled_conv without a bias passes the dummy address 1, so LoopConvLdBias zero-fills each output
    # tile's accumulator rows once (its first reduction tile), one DIM-wide row per cycle on the load
    # path. 14×14 outputs, K = 40 in tiles of 24 (blocks: 2 + 1 = 3 per pixel), whatever the order and
    # however the reduction is split: 196 · 3 = 588 load cycles.
    p = conv_problem(ConvShape(n=1, k=40, c=16, p=14, q=14, r=3, s=3, stride=1, padding=1))
    off = dataclasses.replace(gemmini, software=dataclasses.replace(gemmini.software, conv_bias_zero_fill=False))
    for order, tile in (("bpqkrsc", (1, 7, 14, 24, 3, 3, 16)), ("rscbpqk", (1, 14, 7, 24, 1, 3, 8))):
        m = ConvMapping(tile=tile, order=order)
        on_cost, off_cost = convmodel.evaluate_conv(gemmini, p, m), convmodel.evaluate_conv(off, p, m)
        assert on_cost.local_transfer_cycles - off_cost.local_transfer_cycles == pytest.approx(588)
        assert on_cost.cycles >= off_cost.cycles


def test_output_line_refetches_by_hand(firesim_arch):
    # 64×64 outputs of K = 128 int8 channels in 16-channel tiles (16-byte rows on DIM 16: partial lines). With
    # the output-channel loop outside the pixels (bkpq…), one k iteration touches every output pixel's line
    # (4096 · 64 B) and the whole input window (66·66 pixels, a line each): 543 KB > the 512 KiB L2, so each of
    # the 8 slices fetches and writes back every line again: 4096 · 8 lines · 2 · 64 / 7.111 = 589,824 cycles
    # at least on the store stream. With it inside (bpqk…) a k iteration touches one tile: none.
    arch = firesim_arch
    shape = ConvShape(n=1, k=128, c=16, p=64, q=64, r=3, s=3, stride=1, padding=1)
    T = np.array([[1, 8, 64, 16, 3, 3, 16]])
    n = -(-np.array([shape.dims]) // T)
    outer = convmodel.refetch_store_floor(arch, shape, T, n, np.array([conv.ORDER_INDEX["bkpqrsc"]]))
    inner = convmodel.refetch_store_floor(arch, shape, T, n, np.array([conv.ORDER_INDEX["bpqkrsc"]]))
    assert float(outer[0]) == pytest.approx(4096 * 8 * 2 * 64 / arch.dram.bytes_per_cycle)
    assert float(inner[0]) == 0.0
    p = conv_problem(shape)
    far = convmodel.evaluate_conv(arch, p, ConvMapping(tuple(T[0]), order="bkpqrsc"))
    near = convmodel.evaluate_conv(arch, p, ConvMapping(tuple(T[0]), order="bpqkrsc"))
    assert far.cycles > near.cycles and far.local_transfer_cycles >= float(outer[0])
    # scalar = batched, and no such term without a write-allocating cache
    ms = [ConvMapping(tuple(T[0]), order=o) for o in ("bkpqrsc", "bpqkrsc", "kbpqrsc", "crsbkpq")]
    b = convmodel.evaluate_conv_batch(arch, p, ConvMappingBatch.from_mappings(ms))
    for i, m in enumerate(ms):
        c = convmodel.evaluate_conv(arch, p, m)
        assert (b.cycles[i], b.energy_pj[i]) == (c.cycles, c.energy_pj)
    off = dataclasses.replace(arch, l2=dataclasses.replace(arch.l2, write_allocate=False))
    assert float(convmodel.refetch_store_floor(off, shape, T, n, np.array([conv.ORDER_INDEX["bkpqrsc"]]))[0]) == 0.0
