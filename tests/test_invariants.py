"""Invariants of the model over random shapes and random valid mappings (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gemmap.arch import Software
from gemmap.mapping import MappingBatch
from gemmap.model import compulsory_dram_bytes, evaluate, evaluate_batch
from tests.loopnest import walk
from tests.strategies import problems, valid_mappings


def _check(arch, problem, m):
    c = evaluate(arch, problem, m)
    t = arch.datatypes
    M, K, N = problem.shape_key()
    assert c.macs == M * K * N
    assert c.dram_bytes_by_tensor["A"] >= M * K * t.input_bytes
    assert c.dram_bytes_by_tensor["B"] >= K * N * t.weight_bytes
    assert c.dram_bytes_by_tensor["C"] >= M * N * t.output_bytes
    assert c.dram_bytes >= compulsory_dram_bytes(arch, problem)
    assert c.dram_bytes >= c.dram_bytes_lower_bound
    assert c.cycles >= c.macs / (arch.dim_rows * arch.dim_cols)
    assert c.cycles >= c.compute_cycles
    assert 0 < c.utilization <= 1
    assert c.energy_pj >= c.energy_breakdown["mac"] > 0
    b = evaluate_batch(arch, problem, MappingBatch.from_mappings([m]))
    assert b.cycles[0] == c.cycles and b.energy_pj[0] == c.energy_pj and b.dram_bytes[0] == c.dram_bytes
    assert b.compute_cycles[0] == c.compute_cycles
    return c


@given(data=st.data(), problem=problems())
def test_invariants_default_arch(gemmini, data, problem):
    _check(gemmini, problem, data.draw(valid_mappings(gemmini, problem)))


@given(data=st.data(), problem=problems())
def test_invariants_with_l2(transformer_arch, data, problem):
    _check(transformer_arch, problem, data.draw(valid_mappings(transformer_arch, problem)))


@given(data=st.data(), problem=problems(max_dim=70))
def test_traffic_equals_brute_force_loop_walk(gemmini, transformer_arch, data, problem):
    """The closed-form fills equal a literal walk of the loop nest that counts tile changes."""
    arch = data.draw(st.sampled_from([gemmini, transformer_arch]))
    reload = data.draw(st.booleans())
    arch = dataclasses.replace(arch, software=Software(reload_operands=reload))
    m = data.draw(valid_mappings(arch, problem))
    c = evaluate(arch, problem, m)
    moved = walk(problem.dims, m, arch.l2 is not None, reload)
    for tr in c.traffic:
        assert tr.visits == moved[(tr.tensor, tr.level)], (tr, m)


def test_batch_equals_scalar_on_thousands(gemmini, transformer_arch):
    rng = np.random.default_rng(7)
    from gemmap.mapping import valid_mask
    from gemmap.workload import Problem

    # a 32×32 array tracks one DMA command at a time (gemmap/dma.py, Commands in flight)
    wide = dataclasses.replace(gemmini, pe_array=dataclasses.replace(gemmini.pe_array, rows=32, cols=32))
    for arch in (gemmini, transformer_arch, wide):
        for shape in ((512, 768, 3072), (17, 33, 65), (512, 64, 512), (1, 2048, 1000)):
            p = Problem("x", *shape)
            n = 5000
            D = np.array(shape)
            local = rng.integers(1, D + 1, size=(n, 3))
            n1 = -(-D // local)
            f = rng.integers(1, n1 + 1) if arch.l2 is not None else np.ones((n, 3), dtype=np.int64)
            b = MappingBatch(
                dataflow=rng.integers(0, 2, n).astype(np.int8), local=local, l2_factors=f,
                dram_order=rng.integers(0, 6, n), l2_order=rng.integers(0, 6, n),
                db_spad=rng.integers(0, 2, n).astype(bool), db_acc=rng.integers(0, 2, n).astype(bool),
            )  # fmt: skip
            b = b.take(np.flatnonzero(valid_mask(arch, p, b)))
            assert len(b) > 50
            cost = evaluate_batch(arch, p, b)
            for i in range(len(b)):
                c = evaluate(arch, p, b[i])
                assert (cost.cycles[i], cost.energy_pj[i], cost.dram_bytes[i]) == (c.cycles, c.energy_pj, c.dram_bytes)
