"""The fusion-aware scheduler (DESIGN §7): traffic accounting, verdicts, policies, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gemmap.api import map_workload
from gemmap.mapper import SearchCache, Totals
from gemmap.schedule import POLICIES, fusion_sites, schedule_workload
from gemmap.search import SearchOptions
from gemmap.workload import Overrides, load_workload
from tests.conftest import ROOT

HEUR = SearchOptions(method="heuristic", objective="latency")
BERT = ROOT / "workloads" / "bert.yaml"
EXPECTED_SITES = ["attn_qk+softmax", "out_proj+ln1", "ffn1+gelu", "ffn2+ln2"]


def best_method() -> str:
    """The best search available (the optimal/exhaustive modules land in another issue)."""
    return "optimal" if (ROOT / "gemmap" / "search" / "optimal.py").exists() else "heuristic"


def value(t: Totals, objective: str) -> float:
    return {"latency": float(t.cycles), "energy": t.energy_pj, "edp": t.edp}[objective]


def test_bert_sites():
    sites, loose = fusion_sites(load_workload(BERT))
    assert sorted(s.name for s in sites) == sorted(EXPECTED_SITES)
    assert {s.name: [b.name for b in s.biases] for s in sites}["out_proj+ln1"] == ["res1"]
    assert loose == ()


@pytest.mark.parametrize("acc_kib", [128, 256])
def test_fused_site_keeps_its_intermediate_on_chip(transformer_arch, acc_kib):
    arch = transformer_arch.with_overrides(acc_kib=acc_kib)
    r = schedule_workload(arch, load_workload(BERT), HEUR, "all")
    ob = arch.datatypes.output_bytes
    for s in r.sites:
        p, f, u = s.site.producer, s.fused, s.unfused
        assert f is not None, s.reason
        # fused: nothing of the intermediate reaches DRAM; the op adds no DRAM bytes beyond the
        # bias, and the matmul's C traffic is the final write only (no partial-sum spill)
        assert f.intermediate_write_bytes == f.intermediate_read_bytes == 0
        bias = sum(b.elements * ob for b in s.site.biases)
        assert f.dram_bytes == f.matmul.cost.dram_bytes + bias
        assert f.matmul.cost.dram_bytes_by_tensor["C"] == p.M * p.N * ob
        if s.site.row_wise:
            assert f.matmul.mapping.local[2] == p.N  # whole rows in the accumulator
        # unfused: the intermediate is written once and read once
        assert u.intermediate_write_bytes == u.intermediate_read_bytes == p.M * p.N * ob
        assert u.dram_bytes == u.matmul.cost.dram_bytes + 2 * p.M * p.N * ob + bias
        for sched in (u, f):
            parts = sched.compute_cycles + sched.memory_cycles + sched.norm_cycles
            assert parts == pytest.approx(sched.cycles) and min(sched.memory_cycles, sched.norm_cycles) >= 0


def test_fusion_helps_and_hurts_layernorm_sites(transformer_arch):
    """Scan accumulator sizes and sequence lengths; the model and search must produce both verdicts
    for the same site type (LayerNorm after a matmul)."""
    verdicts: dict[bool, list[str]] = {True: [], False: []}
    for seq in (128, 512):
        work = load_workload(BERT, overrides=Overrides(seq_len=seq))
        for acc in (64, 128, 256, 512):
            r = schedule_workload(transformer_arch.with_overrides(acc_kib=acc), work, HEUR, "auto")
            for s in r.sites:
                if s.site.op.kind == "layernorm" and s.fused is not None:
                    verdicts[s.fused.cycles < s.unfused.cycles].append(f"{s.site.name} seq {seq} acc {acc}")
    assert verdicts[True] and verdicts[False], verdicts


@pytest.mark.parametrize("objective", ["latency", "energy", "edp"])
def test_auto_never_worse_than_none_or_all(transformer_arch, objective):
    opts = SearchOptions(method="heuristic", objective=objective)
    for acc in (64, 128, 256):
        for seq in (128, 512):
            r = schedule_workload(
                transformer_arch.with_overrides(acc_kib=acc),
                load_workload(BERT, overrides=Overrides(seq_len=seq)),
                opts,
            )
            auto = value(r.total("auto"), objective)
            assert auto <= value(r.total("none"), objective) * (1 + 1e-12)
            assert auto <= value(r.total("all"), objective) * (1 + 1e-12)


def test_workload_result_includes_nonlinear_ops(transformer_arch):
    work = load_workload(BERT)
    cache = SearchCache(transformer_arch, HEUR)
    r = schedule_workload(transformer_arch, work, HEUR, "auto", cache=cache)
    for policy in POLICIES:
        wr = map_workload(transformer_arch, work, HEUR, fusion=policy, cache=cache)
        assert wr.total == r.total(policy)
        ops = {x.name: x for x in wr.layers if not x.macs}
        assert set(ops) == {"softmax", "res1", "ln1", "gelu", "res2", "ln2"}
        assert all(x.mapping is None and x.op in ("softmax", "layernorm", "gelu", "add") for x in ops.values())
    wr = r.as_workload_result()
    assert "fused into attn_qk" in {x.name: x for x in wr.layers}["softmax"].note
    names = [x.name for x in wr.layers]
    assert names.index("attn_qk") < names.index("softmax") < names.index("attn_av")


def test_policy_none_skips_the_fused_search(transformer_arch):
    r = schedule_workload(transformer_arch, load_workload(BERT), HEUR, "none")
    assert all(s.fused is None for s in r.sites)
    assert r.total("none") == r.total("all") == r.total("auto")


def test_cpu_path_cannot_fuse(gemmini):
    # Gemmini's default has no normalizer (Softmax/LayerNorm on the CPU) but does have the mvout
    # activation path (has_nonlinear_activations), so only GELU can fuse.
    r = schedule_workload(gemmini, load_workload(BERT), HEUR, "all")
    rowwise = [s for s in r.sites if s.site.name != "ffn1+gelu"]
    assert all(s.fused is None and "normalization unit" in s.reason for s in rowwise)
    assert all(o.where == "cpu" for s in rowwise for o in s.unfused.ops if o.kind != "add")
    assert {s.site.name: s for s in r.sites}["ffn1+gelu"].fused is not None


def test_best_search_fused_is_no_worse_than_constrained_heuristic(transformer_arch):
    """With the best available search, the fused matmul is at least as good as Gemmini's whole-row mode."""
    work = load_workload(ROOT / "workloads" / "bert-tiny.yaml")
    best = schedule_workload(transformer_arch, work, SearchOptions(method=best_method(), objective="latency"), "all")
    heur = schedule_workload(transformer_arch, work, HEUR, "all")
    for b, h in zip(best.sites, heur.sites):
        if h.fused is not None:
            assert b.fused is not None
            assert b.fused.matmul.cost.cycles <= h.fused.matmul.cost.cycles
        assert b.unfused.matmul.cost.cycles <= h.unfused.matmul.cost.cycles


# --- the command line ----------------------------------------------------------------------


def gemmap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gemmap.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_cli_schedule_json_and_plots(tmp_path: Path):
    out = tmp_path / "s.json"
    r = gemmap("schedule", "workloads/bert.yaml", "--arch", "arch/gemmini-transformer.yaml", "--search", "heuristic",
               "--objective", "latency", "--json", str(out), "--plot", str(tmp_path / "s"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert [s["site"] for s in data["sites"]] == EXPECTED_SITES
    for s in data["sites"]:
        assert s["repeat"] in (12, 144)
        assert s["chosen"] in ("fused", "unfused")
        for k in ("cycles", "energy_pj", "dram_bytes"):
            assert s["unfused"][k] > 0 and s["fused"][k] > 0
        chosen = s[s["chosen"]]
        other = s["unfused" if s["chosen"] == "fused" else "fused"]
        assert chosen["cycles"] <= other["cycles"]  # latency adds up over sites: each takes its faster schedule
        assert s["latency_change"] == pytest.approx(s["fused"]["cycles"] / s["unfused"]["cycles"] - 1)
    assert set(data["total"]) == {"none", "all", "auto"}
    assert data["total"]["auto"]["cycles"] <= min(data["total"]["none"]["cycles"], data["total"]["all"]["cycles"])
    for ext in ("png", "svg"):
        assert (tmp_path / f"s.{ext}").stat().st_size > 1000
    assert "attn_qk+softmax" in r.stdout.replace("\n", "")


def test_cli_schedule_lists_and_ratio_plot(tmp_path: Path):
    out = tmp_path / "sweep.json"
    r = gemmap("schedule", "workloads/bert.yaml", "--arch", "arch/gemmini-transformer.yaml", "--search", "heuristic",
               "--acc-kib", "64,256", "--seq-len", "128,512", "--json", str(out), "--ratio-plot", str(tmp_path / "ratio.png"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    points = json.loads(out.read_text())["points"]
    assert {(p["seq_len"], p["acc_kib"]) for p in points} == {(128, 64), (128, 256), (512, 64), (512, 256)}
    at64 = {s["site"]: s for s in points[0]["sites"]}
    assert at64["out_proj+ln1"]["fused"] is None and "fits" in at64["out_proj+ln1"]["fused_infeasible"]
    assert (tmp_path / "ratio.png").exists() and (tmp_path / "ratio.svg").exists()


def test_cli_fusion_policy_typo():
    r = gemmap("map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--fusion", "alll")
    assert r.returncode == 2
    assert "did you mean 'all'" in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_cli_workload_without_fusion_site(tmp_path: Path):
    f = tmp_path / "one.yaml"
    f.write_text("name: one\nops:\n  - {name: mm, op: matmul, M: 64, K: 64, N: 64}\n")
    r = gemmap("schedule", str(f), "--search", "heuristic")
    assert r.returncode == 2 and "no fusion site" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    r = gemmap("map", str(f), "--search", "heuristic", "--fusion", "auto")  # map still works
    assert r.returncode == 0, r.stderr


def test_cli_map_fusion_totals_include_ops(tmp_path: Path):
    out = tmp_path / "m.json"
    r = gemmap("map", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini-transformer.yaml", "--search", "heuristic",
               "--fusion", "auto", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    ops = [x for x in data["layers"] if x["op"] in ("softmax", "layernorm", "gelu", "add")]
    assert len(ops) == 6 and all(x["macs"] == 0 and x["mapping"] == {} for x in ops)
    assert data["total"]["cycles"] == sum(x["cycles"] * x["repeat"] for x in data["layers"])


def test_fused_site_tries_a_double_buffered_accumulator(transformer_arch):
    """At 128 KiB the matmul's fastest whole-row mapping of out_proj is single-buffered, which leaves
    LayerNorm's passes exposed; the fused site is costed with the best double-buffered whole-row
    mapping too and keeps the faster site (so fusing pays there)."""
    from gemmap.schedule import _fused_with, fused_schedule

    arch = transformer_arch.with_overrides(acc_kib=128)
    site = next(s for s in fusion_sites(load_workload(BERT))[0] if s.name == "out_proj+ln1")
    cache = SearchCache(arch, SearchOptions(objective="latency"))
    plain = _fused_with(arch, site, cache.get(site.producer, full_rows=True))
    fused, _ = fused_schedule(arch, site, cache)
    assert fused is not None and fused.cycles <= plain.cycles
    if not plain.matmul.mapping.db_acc:
        assert fused.matmul.mapping.db_acc and fused.cycles < plain.cycles
