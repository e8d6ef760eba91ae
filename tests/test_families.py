"""Decoder LLMs (prefill, decode with a KV cache, GQA, SwiGLU, RMSNorm, RoPE) and ViT workloads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap import api
from gemmap.errors import GemmapError
from gemmap.families import DecoderSpec, causal_splits, decoder_workload
from gemmap.nonlinear import fusion_blocker, stream_cost
from gemmap.schedule import fusion_sites
from gemmap.search import SearchOptions
from gemmap.workload import Overrides, load_workload

from .test_cli import gemmap as run_cli


def shapes(w) -> dict[str, tuple[int, int, int, int]]:
    return {p.name: (p.M, p.K, p.N, p.repeat) for p in w.problems}


def test_llama3_decode_is_gqa_gemv_shaped():
    w = load_workload("llama3-8b", overrides=Overrides(phase="decode", kv_len=4096, batch=2))
    s = shapes(w)
    # projections: M = batch; k/v project to kv_heads·head_dim = 8·128
    assert s["q_proj"] == (2, 4096, 4096, 32)
    assert s["k_proj"] == (2, 4096, 1024, 32)
    assert s["gate"] == s["up"] == (2, 4096, 14336, 32)
    assert s["down"] == (2, 14336, 4096, 32)
    # attention per KV head: the 4 query heads sharing it are the rows; the new token sees 4096 + 1 keys
    assert s["attn_qk"] == (4, 128, 4097, 32 * 8 * 2)
    assert s["attn_av"] == (4, 4097, 128, 32 * 8 * 2)
    assert s["lm_head"] == (2, 4096, 128256, 1)
    kinds = {o.name: o.kind for o in w.nonlinear}
    assert kinds["norm1"] == kinds["norm2"] == kinds["final_norm"] == "rmsnorm"
    assert kinds["swiglu"] == "swiglu" and kinds["rope_q"] == kinds["rope_k"] == "rope"


def test_gpt2_prefill_is_gelu_layernorm_mha_with_causal_blocks():
    w = load_workload("gpt2", overrides=Overrides(seq_len=1024))
    s = shapes(w)
    assert s["q_proj"] == s["k_proj"] == (1024, 768, 768, 12)
    assert s["ffn1"] == (1024, 768, 3072, 12) and s["ffn2"] == (1024, 3072, 768, 12)
    # 4 causal row blocks of 256 queries against the keys up to each block's last query
    assert [s[f"attn_qk.{i}"] for i in range(4)] == [(256, 64, 256 * (i + 1), 144) for i in range(4)]
    assert [s[f"attn_av.{i}"] for i in range(4)] == [(256, 256 * (i + 1), 64, 144) for i in range(4)]
    assert not any(o.kind == "rope" for o in w.nonlinear)
    # the op sequence is the layer's: pre-norm first, the LM head last
    assert w.sequence[0] == "norm1" and w.sequence[-1] == "lm_head"


@given(seq=st.integers(1, 5000), blocks=st.integers(1, 16))
def test_causal_splits_cover_the_triangle(seq, blocks):
    splits = causal_splits(seq, blocks)
    assert sum(r for r, _ in splits) == seq
    assert splits[-1][1] == seq
    assert all(r >= 1 for r, _ in splits)
    # every query sees at least its causal prefix, never a key after its block's last query
    end = 0
    for rows, keys in splits:
        end += rows
        assert keys == end
    work = sum(r * k for r, k in splits)
    assert seq * (seq + 1) // 2 <= work <= seq * seq


def test_causal_work_fraction_by_hand():
    # b blocks of S/b: work = (S/b)² · (1 + 2 + … + b) = S² (b + 1) / (2b)
    S, b = 2048, 4
    assert sum(r * k for r, k in causal_splits(S, b)) == S * S * (b + 1) // (2 * b)
    assert causal_splits(S, 1) == [(S, S)]


def test_decode_kv_cache_is_read_every_step_and_appended():
    arch = api.load_arch("arch/gemmini.yaml")
    w = load_workload("llama2-7b", overrides=Overrides(phase="decode", kv_len=1000))
    qk, kproj = w.problem("attn_qk"), w.problem("k_proj")
    r = api.find_mapping(arch, qk, SearchOptions(method="heuristic"))
    # the K cache (head_dim × (kv_len + 1) int8, the B operand) comes from DRAM in full
    assert r.cost.dram_bytes_by_tensor["B"] >= 128 * 1001
    # the new token's K is k_proj's output, written to DRAM (the cache append)
    rk = api.find_mapping(arch, kproj, SearchOptions(method="heuristic"))
    assert rk.cost.dram_bytes_by_tensor["C"] >= 4096


def test_llm_ops_run_on_the_cpu_and_are_not_fusion_sites():
    arch = api.load_arch("arch/gemmini-transformer.yaml")  # has the normalizer and activation unit
    w = load_workload("llama2-7b", overrides=Overrides(seq_len=64))
    sites, loose = fusion_sites(w)
    assert {s.name for s in sites} == {f"attn_qk.{i}+softmax.{i}" for i in range(4)}
    assert {o.name for o in loose} >= {"norm1", "norm2", "rope_q", "rope_k", "swiglu", "final_norm"}
    by_name = {o.name: o for o in w.nonlinear}
    for name, source in (("norm1", "Normalizer.scala"), ("swiglu", "Activation.scala"), ("rope_q", "rotation")):
        assert source in fusion_blocker(arch, by_name[name], by_name[name].row_len)
        assert stream_cost(arch, by_name[name]).where == "cpu"
    # SwiGLU reads gate and up and writes one result: 3 tensors of rows × ffn through DRAM
    sw = by_name["swiglu"]
    assert stream_cost(arch, sw).dram_bytes == 3 * sw.rows * sw.row_len * arch.datatypes.output_bytes
    assert stream_cost(arch, sw).cycles == pytest.approx(sw.elements * arch.nonlinear.cpu_cycles_per_elem.swiglu, abs=1)


def test_vit_patch_embedding_is_a_conv_over_patches():
    w = load_workload("vit-base")
    pe = w.problem("patch_embed")
    assert pe.conv is not None and (pe.conv.k, pe.conv.c, pe.conv.p, pe.conv.r, pe.conv.stride) == (768, 3, 14, 16, 16)
    assert shapes(w)["attn_qk"] == (197, 64, 197, 144)  # 196 patches + the class token, not causal
    assert shapes(w)["head"] == (1, 768, 1000, 1)


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("bert", Overrides(phase="decode"), "--phase does not apply to model: bert"),
        ("vit-base", Overrides(kv_len=8), "--kv-len does not apply to model: vit"),
        ("resnet50", Overrides(batch=2), "--batch does not apply to an explicit op list"),
    ],
)
def test_overrides_that_do_not_apply_are_refused(name, overrides, needle):
    with pytest.raises(GemmapError, match=needle):
        load_workload(name, overrides=overrides)


def test_bad_head_counts_are_one_line_errors():
    spec = DecoderSpec(name="x", model="llama", layers=1, hidden=4096, heads=32, kv_heads=12)
    with pytest.raises(GemmapError, match="kv_heads \\(12\\) must divide heads \\(32\\)"):
        decoder_workload(spec)


def test_map_cli_decode_prints_bounds_and_ops(tmp_path):
    out = tmp_path / "d.json"
    r = run_cli("map", "workloads/llama2-7b.yaml", "--phase", "decode", "--kv-len", "512", "--search", "heuristic",
                "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    layers = {x["name"]: x for x in data["layers"]}
    assert layers["q_proj"]["dims"] == {"M": 1, "K": 4096, "N": 4096}
    assert layers["swiglu"]["bound"] == "CPU" and layers["swiglu"]["op"] == "swiglu"
    # a batch-1 projection streams each weight once: its time is at the DRAM floor (16 B/cycle here)
    q = layers["q_proj"]
    assert q["dram_floor_cycles"] >= 0.9 * q["cycles"]
    assert [x["name"] for x in data["layers"]][:2] == ["norm1", "q_proj"]
