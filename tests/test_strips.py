"""GEMM operand strips in a set-associative L2 (gemmap/strips.py) and partial sums kept in the
accumulator (``software.keep_partial_sums``): the formulas pinned by hand, the cyclic hit share
against a brute-force simulation of a random-victim set, scalar = batched, the optimal search's
order classes keyed by the strip codes, optimal = exhaustive."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from gemmap import model, strips, warm
from gemmap.conv import conv_shape
from gemmap.mapping import DIMS, ORDER_INDEX, Mapping
from gemmap.mapspace import MapSpace
from gemmap.workload import Problem
from tests.agree import matmul_agrees, optimal_matches_exhaustive
from tests.test_cli import gemmap


def _fixed_point(n: float, ways: int) -> float:
    """The smallest root of h = (1 − 1/W)^((n − 1)(1 − h)), by iterating from 0 (independent of the
    closed form)."""
    h = 0.0
    for _ in range(20000):
        h = (1 - 1 / ways) ** ((n - 1) * (1 - h))
    return h


def _simulated_hits(n: int, ways: int, passes: int = 600, seed: int = 0) -> float:
    """Hit share of a cyclic stream of n lines through one random-victim set (any way, valid or not),
    after a warm-up of 50 passes."""
    rng = np.random.default_rng(seed)
    held = [-1] * ways
    hits = uses = 0
    for p in range(passes):
        for line in range(n):
            hit = line in held
            if not hit:
                held[int(rng.integers(ways))] = line
            if p >= 50:
                hits += hit
                uses += 1
    return hits / uses


def test_cyclic_hit_share_pinned():
    # n = W + 1 has the root 1 − 1/W: (1 − 1/W)^(W · 1/W) = 1 − 1/W
    assert strips.cyclic_hit_share(9, 8) == pytest.approx(7 / 8, abs=1e-12)
    assert strips.cyclic_hit_share(3, 2) == pytest.approx(1 / 2, abs=1e-12)
    # up to the ways every line stays; the iteration agrees above
    assert strips.cyclic_hit_share(np.array([0.0, 1.0, 5.0, 8.0]), 8).tolist() == [1.0, 1.0, 1.0, 1.0]
    for n in (10, 12, 16, 40, 576):
        assert strips.cyclic_hit_share(n, 8) == pytest.approx(_fixed_point(n, 8), abs=1e-9)
    assert strips.cyclic_hit_share(100, None) == 1.0


@pytest.mark.parametrize("n,ways", [(12, 8), (16, 8), (32, 8), (24, 16)])
def test_cyclic_hit_share_against_a_random_victim_set(n, ways):
    """The mean-field root is within 0.05 of a simulated set from n = W + 4 up (at n = W + 1 it
    over-states the hits by about 0.1: docs/model.md)."""
    assert strips.cyclic_hit_share(n, ways) == pytest.approx(_simulated_hits(n, ways), abs=0.05)


def _flat(order_dram: str, bounds_dram: dict[str, int], order_l2: str = "MNK", bounds_l2=None):
    bounds_l2 = bounds_l2 or {}
    loops = [(DIMS.index(d), 0, bounds_dram.get(d, 1)) for d in order_dram]
    return loops + [(DIMS.index(d), 1, bounds_l2.get(d, 1)) for d in order_l2]


def test_strip_codes_by_hand():
    # B (rows along K, columns along N): K inside the innermost N loop at the DRAM level walks all K
    assert strips.strip_code(_flat("MNK", {"N": 4, "K": 3}), 1) == 2
    # K outside N: only the tile's own rows between column tiles
    assert strips.strip_code(_flat("MKN", {"N": 4, "K": 3}), 1) == 0
    # the DRAM K loop outside, the L2-level K loop inside (every L2 loop is inside the DRAM ones)
    assert strips.strip_code(_flat("KNM", {"N": 4, "K": 3}, "MNK", {"K": 2}), 1) == 1
    # the innermost N loop at the L2 level, K inside it there; the DRAM-level N loop outside it walks
    # the DRAM-level K loop too: outer = 1 + 2
    assert strips.strip_code(_flat("NKM", {"N": 2, "K": 3}, "NKM", {"N": 2, "K": 2}), 1) == 1 + 27 * 3
    # no column tiles: nothing to share lines with
    assert strips.strip_code(_flat("MNK", {"K": 3}), 1) == 0
    # A (rows along M, columns along K): M inside the innermost K loop
    assert strips.strip_code(_flat("KMN", {"M": 5, "K": 3}), 0) == 2
    assert strips.strip_code(_flat("MKN", {"M": 5, "K": 3}), 0) == 0
    # the table is the function on every loop shape (bound 2 where the mask says non-trivial)
    od, ol = ORDER_INDEX["NKM"], ORDER_INDEX["MNK"]
    assert strips.STRIP_LEVEL[1, od, ol, 0b110, 0] == 2
    # B's reload loop (M) inside its column loop: packed after the column code
    assert strips.strip_code(_flat("NMK", {"N": 4, "K": 3, "M": 2}), 1) == 2 + 3 * (2 + 3 * 2)


def test_gemv_strip_by_hand(firesim_arch):
    """M1 K1024 N1024, tiles 1×256×16 (16-byte B rows at a 1 KiB stride): column loop outside the
    reduction (MNK) walks all 1024 rows of B between column tiles; they reach 1024 / gcd(16, 1024) =
    64 of the L2's sets, 16 lines a set against 8 ways, so each of the 1024 · 64 rows loaded misses
    with 1 − h(16, 8) and costs a 64-byte line. The LLC (128-byte blocks, 8 a stride: 512 sets) holds
    the strip's 2 blocks a set. With the reduction outside (MKN) the strip is the tile's 256 rows, 4
    a set: no extra line."""
    p = Problem("gemv", 1, 1024, 1024)
    m = Mapping("ws", (1, 256, 16), (1, 1, 1), "MNK", "MNK", db_spad=True, db_acc=True)
    c = model.evaluate(firesim_arch, p, m)
    lines = 1024 * 64 * (1 - _fixed_point(16, 8))
    assert c.dram_bytes_by_tensor["B"] == math.ceil(lines * 64)
    calm = model.evaluate(firesim_arch, p, dataclasses.replace(m, dram_order="MKN", l2_order="MKN"))
    assert calm.dram_bytes_by_tensor["B"] == 1024 * 1024
    assert (c.strip_bytes, c.strip_cycles) == (math.ceil(lines * 64) - 1024 * 1024, 0.0)
    off = dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, gemm_strips=False))
    assert model.evaluate(off, p, m).dram_bytes_by_tensor["B"] == 1024 * 1024
    # the LLC holds the strip (no miss cycles): the memory time moves by the bytes alone (B's lines, and
    # A's reloads under the column loop)
    assert c.dram_cycles - calm.dram_cycles == pytest.approx((c.dram_bytes - calm.dram_bytes) / 7.111, rel=1e-9)


def test_reloads_inside_the_column_loop_by_hand(firesim_arch):
    """M64 K1024 N1024, tiles 16×256×16, order NKM: B's tile is reloaded by the 4 M tiles right after
    each other (the M loop inside the column loop), 256 rows between two of its loads: 4 a set, all
    kept; only the first of the 4 loads (¼ of them) comes after all 1024 rows of the column tile before,
    16 a set, and misses with 1 − h(16, 8)."""
    p = Problem("t", 64, 1024, 1024)
    m = Mapping("ws", (16, 256, 16), (1, 1, 1), "NKM", "NKM", db_spad=True, db_acc=True)
    c = model.evaluate(firesim_arch, p, m)
    rows = 1024 * 64 * 4  # B's rows loaded: every column tile's 1024 rows, once per M tile
    assert c.dram_bytes_by_tensor["B"] == math.ceil(rows * 0.25 * (1 - _fixed_point(16, 8)) * 64)
    # packed code: the column strip walks the DRAM-level K loop (2), the M loop is inside it at the DRAM
    # level (2), and nothing of K inside the M loop (0)
    loops = _flat("NKM", {"N": 64, "K": 4, "M": 4})
    assert strips.strip_code(loops, 1) == 2 + 3 * (2 + 3 * 0)
    assert [int(v) for v in strips.decode(strips.strip_code(loops, 1))] == [2, 2, 0, 0]


def test_line_neighbours_across_an_outer_column_loop(firesim_arch):
    """M1 K1024 N1024, tiles 1×256×16, DRAM order MNK with the L2-level N factor 2 (L2 order MKN): the
    inner column loop walks only the tile's 256 rows (4 a set, kept), but every other column tile
    reaches its line neighbour across a step of the DRAM-level N loop, after all 1024 rows (16 a set):
    half the loads miss with 1 − h(16, 8)."""
    p = Problem("gemv", 1, 1024, 1024)
    m = Mapping("ws", (1, 256, 16), (1, 1, 2), "MNK", "MKN", db_spad=True, db_acc=True)
    c = model.evaluate(firesim_arch, p, m)
    assert c.dram_bytes_by_tensor["B"] == math.ceil(1024 * 64 * 0.5 * (1 - _fixed_point(16, 8)) * 64)
    loops = _flat("MNK", {"N": 32, "K": 4}, "MKN", {"N": 2})
    assert [int(v) for v in strips.decode(strips.strip_code(loops, 1))] == [0, 0, 0, 3]


def test_resident_tiles_are_not_reloads(firesim_arch):
    """The same NKM nest with Timeloop residency (``software.reload_operands`` off): B's tile stays in
    the scratchpad across the M loop below all of B's own loops, so there are no reloads, and every
    load of it (1024 · 64 rows) follows a whole column strip."""
    arch = dataclasses.replace(firesim_arch, software=dataclasses.replace(firesim_arch.software, reload_operands=False))
    p = Problem("t", 64, 1024, 1024)
    m = Mapping("ws", (16, 256, 16), (1, 1, 1), "NKM", "NKM", db_spad=True, db_acc=True)
    c = model.evaluate(arch, p, m)
    assert c.dram_bytes_by_tensor["B"] == math.ceil(1024 * 64 * (1 - _fixed_point(16, 8)) * 64)


def test_llc_misses_of_a_strip_by_hand(firesim_arch):
    """M1 K9216 N4096, 8-byte B rows at a 4 KiB stride: 16 L2 sets (576 lines each: every row misses)
    and 4096 / gcd(32, 4096) = 128 LLC sets (72 blocks each against 8 ways); each missed line also
    refills its 128-byte block: 128 × the miss's cycles per byte beyond a hit."""
    a = firesim_arch
    p = Problem("gemv", 1, 9216, 4096)
    T = np.array([[1, 48, 8]])
    fills = (np.array([9216 * 512]), np.array([9216 * 4096]))  # A once per column tile, B once
    (xa, xb), cycles = strips.strip_terms(a, p, T, np.ones((1, 3)), (np.array([0]), np.array([2])), fills, (0, 0))
    lines = 9216 * 512 * (1 - _fixed_point(576, 8))
    kept = _fixed_point(72, 8)
    per_byte = warm.miss_cycles_per_byte(a, conv_shape(p, a))
    assert xa[0] == 0  # A's rows are 48 bytes: a line holds no whole number of them
    assert xb[0] == math.ceil(lines * 64)
    assert cycles[0] == pytest.approx(lines * (1 - kept) * 128 * per_byte, rel=1e-9)
    assert per_byte == pytest.approx(1 / 4.741 - 1 / 7.111 + (4096 / (9216 + 9216 * 4096 + 4096)) / 8.0, rel=1e-9)


def test_keep_partial_sums_moves_no_partial_sum(gemmini):
    """K outside the other loops: spilled partial sums without the flag, none with it."""
    p = Problem("t", 32, 64, 48)
    m = Mapping("ws", (16, 16, 16), (1, 1, 1), "KMN", "MNK", db_spad=True, db_acc=True)
    spill = model.evaluate(gemmini, p, m)
    keep_arch = dataclasses.replace(gemmini, software=dataclasses.replace(gemmini.software, keep_partial_sums=True))
    kept = model.evaluate(keep_arch, p, m)
    c_spill = next(t for t in spill.traffic if t.tensor == "C" and t.level == "local")
    c_kept = next(t for t in kept.traffic if t.tensor == "C" and t.level == "local")
    assert c_spill.visits == 4 * 32 * 48 and c_spill.bytes_in > 0
    assert (c_kept.visits, c_kept.bytes_in, c_kept.bytes_out) == (32 * 48, 0, 32 * 48)
    assert kept.cycles < spill.cycles


def strip_arch(base, keep: bool = True):
    """The FireSim arch shrunk so spaces stay enumerable and strips bite: a 4×4 array, 1 KiB SRAMs, a
    1 KiB 16-way L2 (one set of 64-byte lines) and a 1 KiB 2-way LLC of 128-byte blocks."""
    return dataclasses.replace(
        base,
        pe_array=dataclasses.replace(base.pe_array, rows=4, cols=4),
        scratchpad=dataclasses.replace(base.scratchpad, kib=1),
        accumulator=dataclasses.replace(base.accumulator, kib=1),
        l2=dataclasses.replace(base.l2, kib=1, ways=16),
        dram=dataclasses.replace(base.dram, cache_kib=1, cache_ways=2),
        software=dataclasses.replace(base.software, keep_partial_sums=keep),
    )


@pytest.mark.parametrize("keep", [True, False])
def test_scalar_equals_batched_with_strips(firesim_arch, keep, monkeypatch):
    arch, p = strip_arch(firesim_arch, keep), Problem("t", 3, 40, 64)
    batch = MapSpace(arch, p).sample(600, seed=1)
    matmul_agrees(arch, p, batch, step=1)
    # the sample has mappings the strips lift
    with_strips = model.evaluate_batch(arch, p, batch).cycles
    monkeypatch.setattr(strips, "strip_terms", lambda a, q, T, *_: ((np.zeros(len(T)),) * 2, np.zeros(len(T))))
    assert (with_strips > model.evaluate_batch(arch, p, batch).cycles).sum() >= 10


def test_order_classes_key_the_strips(firesim_arch):
    """Every mapping of a space whose codes (fills of A, B, C into the local level and the L2, strips
    of A and B), tile, factors, dataflow and buffering agree costs the same: the optimal search costs
    one order pair per such class."""
    arch, p = strip_arch(firesim_arch), Problem("t", 1, 64, 128)
    D = np.array(p.shape_key())
    local_table, dram_table = model.local_fill_level(arch), model.dram_fill_level(arch)
    groups: dict[tuple, set] = {}
    for b in MapSpace(arch, p).enumerate():
        n1 = -(-D // b.local)
        f = np.minimum(b.l2_factors, n1)
        md, ml = model.level_masks(-(-n1 // f)), model.level_masks(f)
        codes = [local_table[x][b.dram_order, b.l2_order, md, ml] for x in range(3)]
        codes += [dram_table[x][b.dram_order, 0, md, 0] for x in range(3)]
        codes += [strips.STRIP_LEVEL[x][b.dram_order, b.l2_order, md, ml] for x in range(2)]
        key = np.column_stack([b.dataflow, b.local, f, b.db_spad, b.db_acc, *codes])
        cost = model.evaluate_batch(arch, p, b)
        for k, cyc, e in zip(map(tuple, key.tolist()), cost.cycles.tolist(), cost.energy_pj.tolist()):
            groups.setdefault(k, set()).add((cyc, e))
    assert len(groups) > 100
    assert all(len(v) == 1 for v in groups.values())


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_optimal_equals_exhaustive_with_strips(firesim_arch, keep, objective):
    optimal_matches_exhaustive(strip_arch(firesim_arch, keep), Problem("t", 1, 64, 128), objective)


def test_optimal_equals_exhaustive_with_strips_two_rows(firesim_arch):
    optimal_matches_exhaustive(strip_arch(firesim_arch), Problem("t", 3, 40, 64), "latency")


def test_evaluate_reports_the_strips(tmp_path):
    """``gemmap evaluate`` names the lines the strips add (DOSA's row 1027 on the FireSim arch)."""
    out = tmp_path / "e.json"
    r = gemmap(
        "evaluate", "--layer", "matmul M=1 K=9216 N=4096", "--arch", "arch/gemmini-firesim.yaml", "--json", str(out),
        "--mapping", "L3[WIO] K128 C48 - L2[WI] N1 K4X - L1[O] K8 C48 C4X - L0[W] N1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "strips overflow the L2's sets add" in " ".join(r.stdout.split())
    cost = json.loads(out.read_text())["cost"]
    assert cost["strip_bytes"] == cost["dram_bytes_by_tensor"]["B"] - 9216 * 4096
    assert cost["strip_bytes"] > 9216 * 4096 // 2 and cost["cycles_breakdown"]["strip_memory_cycles"] > 0


def test_cache_geometry_must_be_powers_of_two(firesim_arch):
    from gemmap.errors import GemmapError

    bad = dataclasses.replace(firesim_arch, dram=dataclasses.replace(firesim_arch.dram, cache_block_bytes=96))
    with pytest.raises(GemmapError, match="dram.cache_block_bytes"):
        bad.checked("arch.yaml")
    bad = dataclasses.replace(firesim_arch, l2=dataclasses.replace(firesim_arch.l2, line_bytes=48))
    with pytest.raises(GemmapError, match="l2.line_bytes"):
        bad.checked("arch.yaml")


def test_llc_without_ways_is_one_set(firesim_arch):
    """``dram.cache_ways: null`` (any block anywhere): a strip of 9216 blocks overflows a 64 KiB LLC
    (512 blocks) as one set of 512 ways does, so its misses refill blocks."""
    arch = dataclasses.replace(firesim_arch, dram=dataclasses.replace(firesim_arch.dram, cache_kib=64, cache_ways=None))
    p = Problem("gemv", 1, 9216, 4096)
    fills = (np.array([9216 * 512]), np.array([9216 * 4096]))
    _, cycles = strips.strip_terms(arch, p, np.array([[1, 48, 8]]), np.ones((1, 3)), (0, 2), fills, (0, 0))
    lines = 9216 * 512 * (1 - _fixed_point(576, 8))
    kept = _fixed_point(9216, 512)
    assert cycles[0] == pytest.approx(lines * (1 - kept) * 128 * warm.miss_cycles_per_byte(arch, conv_shape(p, arch)))
    assert cycles[0] > 0
