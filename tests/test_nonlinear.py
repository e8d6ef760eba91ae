"""Costs of the non-linear ops pinned to hand derivations (gemmap.nonlinear).

Set-up: the Transformer study's Gemmini (arch/gemmini-transformer.yaml): 16-wide normalization
unit, 3 passes per row, 16 B/cycle DMA between the L2 and the accumulator, 64 B/cycle DRAM,
int8 outputs, int32 accumulator; and Gemmini's default (no unit: the host CPU).
"""

from __future__ import annotations

import pytest

from gemmap.nonlinear import RowBlocks, bias_cost, fused_cost, fusion_blocker, pass_cycles, stream_cost
from gemmap.workload import NonlinearOp

SOFTMAX = NonlinearOp("softmax", "softmax", 512, 512)
LN = NonlinearOp("ln1", "layernorm", 512, 768)
GELU = NonlinearOp("gelu", "gelu", 512, 3072)
RES = NonlinearOp("res1", "add", 512, 768)


def test_pass_cycles_16_lanes(transformer_arch):
    # 512 rows of 512 elements, 16 per cycle: 512 · 32 = 16384 cycles per pass
    assert pass_cycles(transformer_arch, 512, 512) == 16384
    assert pass_cycles(transformer_arch, 1, 17) == 2  # a partial lane group still takes a cycle


def test_unfused_softmax_on_the_unit(transformer_arch):
    c = stream_cost(transformer_arch, SOFTMAX)
    # 3 passes · 16384 = 49152 busy; transfers 2 · 262144 B / 16 B/cycle = 32768 (overlapped);
    # row blocks: half the 128 KiB accumulator = 1024 rows of 16 int32, a row of 512 takes 32 →
    # 32 rows per block; first block in and last block out exposed: 2 · 32·512 / 16 = 2048
    assert c.where == "norm-unit"
    assert c.norm_cycles == 49152
    assert c.cycles == 49152 + 2048
    assert c.dram_bytes == 2 * 512 * 512  # the intermediate read back once, the result written once
    a = transformer_arch
    acc = (1 + 3) * 512 * 512 * 4 * a.acc_pj_per_byte()  # mvin write + 3 pass reads, int32
    unit = 3 * 512 * 512 * a.nonlinear.unit_pj_per_elem
    mem = 2 * 512 * 512 * (a.dram.pj_per_byte + 2 * a.l2_pj_per_byte())
    assert c.energy_pj == pytest.approx(acc + unit + mem)


def test_unfused_on_the_cpu(gemmini):
    c = stream_cost(gemmini, LN)
    assert c.where == "cpu"
    assert c.cycles == 512 * 768 * gemmini.nonlinear.cpu_cycles_per_elem.layernorm
    assert c.dram_bytes == 2 * 512 * 768
    assert c.energy_pj == pytest.approx(512 * 768 * (gemmini.nonlinear.cpu_pj_per_elem + 2 * gemmini.dram.pj_per_byte))


def test_fusion_needs_the_unit_and_whole_rows(gemmini, transformer_arch):
    assert "normalization unit" in fusion_blocker(gemmini, SOFTMAX, 512)
    assert fusion_blocker(transformer_arch, SOFTMAX, 512) is None
    assert "rows" in fusion_blocker(transformer_arch, SOFTMAX, 256)
    too_long = NonlinearOp("softmax", "softmax", 4, 64 * 1024)  # 64k int32 = 256 KiB per row
    assert "does not fit" in fusion_blocker(transformer_arch, too_long, 64 * 1024)


def test_fused_softmax_overlaps_all_but_the_last_block(transformer_arch):
    # 16 row blocks of 32 rows; per block: 2 statistics passes · 32 · 32 = 2048 cycles; the output
    # pass (32·32 = 1024 cycles) equals the mvout at 16 B/cycle (32·512 B / 16 = 1024): no extra.
    rb = RowBlocks(M=512, rows=32, matmul_cycles=16 * 5000, double_buffered=True)
    c = fused_cost(transformer_arch, SOFTMAX, "attn_qk", rb)
    assert c.dram_bytes == 0
    assert c.cycles == 2048  # per-block matmul 5000 ≥ 2048: only the last block is exposed
    slow = fused_cost(transformer_arch, SOFTMAX, "attn_qk", RowBlocks(512, 32, 16 * 1000, True))
    assert slow.cycles == 15 * (2048 - 1000) + 2048
    serial = fused_cost(transformer_arch, SOFTMAX, "attn_qk", RowBlocks(512, 32, 16 * 5000, False))
    assert serial.cycles == 16 * 2048
    a = transformer_arch
    assert c.energy_pj == pytest.approx(
        2 * 512 * 512 * 4 * a.acc_pj_per_byte() + 3 * 512 * 512 * a.nonlinear.unit_pj_per_elem
    )


def test_fused_gelu_rides_on_mvout(transformer_arch):
    c = fused_cost(transformer_arch, GELU, "ffn1", RowBlocks(512, 128, 10**6, True))
    assert c.cycles == 0 and c.dram_bytes == 0
    assert c.energy_pj == pytest.approx(512 * 3072 * transformer_arch.nonlinear.unit_pj_per_elem)


def test_residual_is_a_bias_preload(transformer_arch):
    c = bias_cost(transformer_arch, RES, "out_proj")
    assert c.dram_bytes == 512 * 768
    assert c.cycles == 512 * 768 // 16  # DMA at 16 B/cycle is slower than DRAM at 64
