"""``gemmap import hf``: Hugging Face configs (tests/data/hf, from the model cards) as workload specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemmap.cli import main
from gemmap.errors import GemmapError
from gemmap.interop.hf import import_config, workload_spec_from_config
from gemmap.workload import Overrides, load_workload

DATA = Path(__file__).resolve().parent / "data" / "hf"

LLAMA_COMMON = {"model": "llama", "layers": 32, "hidden": 4096, "heads": 32}
EXPECTED = {
    "bert-base-uncased": {
        "name": "bert-base-uncased", "model": "bert", "layers": 12, "hidden": 768, "heads": 12, "ffn": 3072,
        "seq_len": 512, "batch": 1,
    },
    "gpt2": {
        "name": "gpt2", "model": "gpt", "layers": 12, "hidden": 768, "heads": 12, "kv_heads": 12, "ffn": 3072,
        "ffn_kind": "gelu", "norm": "layernorm", "rope": False, "vocab": 50257, "phase": "prefill", "seq_len": 1024,
        "batch": 1,
    },
    "llama2-7b": {
        "name": "llama2-7b", **LLAMA_COMMON, "kv_heads": 32, "ffn": 11008, "ffn_kind": "swiglu", "norm": "rmsnorm",
        "rope": True, "vocab": 32000, "phase": "prefill", "seq_len": 2048, "batch": 1,
    },
    "llama3-8b": {
        "name": "llama3-8b", **LLAMA_COMMON, "kv_heads": 8, "ffn": 14336, "ffn_kind": "swiglu", "norm": "rmsnorm",
        "rope": True, "vocab": 128256, "phase": "prefill", "seq_len": 2048, "batch": 1,
    },
    "mistral-7b-v0.1": {
        "name": "mistral-7b-v0.1", **LLAMA_COMMON, "kv_heads": 8, "ffn": 14336, "ffn_kind": "swiglu",
        "norm": "rmsnorm", "rope": True, "vocab": 32000, "phase": "prefill", "seq_len": 2048, "batch": 1,
    },
    "vit-base-patch16-224": {
        "name": "vit-base-patch16-224", "model": "vit", "layers": 12, "hidden": 768, "heads": 12, "ffn": 3072,
        "image": 224, "patch": 16, "channels": 3, "classes": 1000, "batch": 1,
    },
}  # fmt: skip


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_model_card_configs(stem):
    spec = import_config(DATA / f"{stem}.json")
    assert spec == EXPECTED[stem]
    assert list(spec) == list(EXPECTED[stem])  # the key order of the written YAML


def _llama2() -> dict:
    return json.loads((DATA / "llama2-7b.json").read_text())


def test_decode_and_overrides():
    spec = workload_spec_from_config(_llama2(), Overrides(phase="decode", kv_len=4096, batch=8))
    assert (spec["phase"], spec["kv_len"], spec["batch"]) == ("decode", 4096, 8)
    assert "seq_len" not in spec
    # --kv-len alone means decode; --seq-len sets prefill
    assert workload_spec_from_config(_llama2(), Overrides(kv_len=512))["phase"] == "decode"
    spec = workload_spec_from_config(_llama2(), Overrides(seq_len=128), name="mine")
    assert (spec["name"], spec["phase"], spec["seq_len"]) == ("mine", "prefill", 128)


def test_hf_defaults_absent_keys():
    """num_key_value_heads absent = multi-head; no rms_norm_eps = LayerNorm; gpt2 n_inner null = 4 * n_embd;
    vit classes from id2label; BERT's seq_len capped by max_position_embeddings."""
    cfg = {k: v for k, v in _llama2().items() if k not in ("num_key_value_heads", "rms_norm_eps")}
    cfg["num_attention_heads"] = 16
    spec = workload_spec_from_config(cfg)
    assert (spec["kv_heads"], spec["norm"]) == (16, "layernorm")
    gpt = workload_spec_from_config({"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "n_inner": None,
                                     "vocab_size": 100, "n_positions": 256})  # fmt: skip
    assert (gpt["ffn"], gpt["seq_len"]) == (256, 256)
    vit = json.loads((DATA / "vit-base-patch16-224.json").read_text())
    del vit["num_labels"]
    assert "classes" not in workload_spec_from_config(vit)
    assert workload_spec_from_config({**vit, "id2label": {"0": "cat", "1": "dog"}})["classes"] == 2
    bert = json.loads((DATA / "bert-base-uncased.json").read_text())
    assert workload_spec_from_config({**bert, "max_position_embeddings": 128})["seq_len"] == 128


@pytest.mark.parametrize(
    ("config", "options", "expected"),
    [
        ({"model_type": "t5"}, Overrides(), "model_type 't5' is not supported (supported: bert, gpt2, llama, mistral, vit)"),
        ({"model_type": "lama"}, Overrides(), "(did you mean 'llama'?)"),
        ({"hidden_size": 4}, Overrides(), "no 'model_type' (supported: bert, gpt2, llama, mistral, vit)"),
        ({"model_type": "bert"}, Overrides(), "missing 'num_hidden_layers' (needed for model_type bert)"),
        ({**_llama2(), "hidden_size": "4096"}, Overrides(), "'hidden_size' must be a positive whole number, got '4096'"),
        ({**_llama2(), "hidden_act": "gelu"}, Overrides(), "hidden_act 'gelu': gemmap models llama's gated MLP with SiLU"),
        ({**_llama2(), "num_key_value_heads": 5}, Overrides(), "num_key_value_heads 5 does not divide num_attention_heads 32"),
        ({"model_type": "gpt2", "activation_function": "relu"}, Overrides(), "activation_function 'relu': gemmap models gpt2's MLP with GELU only"),
        (_llama2(), Overrides(seq_len=5000), "--seq-len 5000 exceeds the model's max_position_embeddings 4096"),
        (_llama2(), Overrides(phase="prefill", kv_len=10), "--kv-len applies to --phase decode"),
        (_llama2(), Overrides(phase="decode", seq_len=10), "--seq-len is the prefill length"),
        ({"model_type": "bert"}, Overrides(phase="decode"), "--phase and --kv-len apply to decoder models"),
        ({"model_type": "vit"}, Overrides(seq_len=10), "--seq-len does not apply to vit"),
    ],
)  # fmt: skip
def test_errors_are_one_line(config, options, expected):
    with pytest.raises(GemmapError) as exc:
        workload_spec_from_config(config, options, source="cfg.json")
    assert expected in str(exc.value)
    assert "\n" not in str(exc.value)


def test_mistral_sliding_window_bounds_the_context():
    cfg = json.loads((DATA / "mistral-7b-v0.1.json").read_text())
    assert workload_spec_from_config(cfg, Overrides(seq_len=4096))["seq_len"] == 4096
    with pytest.raises(GemmapError, match="sliding_window 4096"):
        workload_spec_from_config(cfg, Overrides(seq_len=4097))


def test_cli_bert_import_loads_and_maps(tmp_path, capsys):
    out = tmp_path / "bert.yaml"
    assert main(["import", "hf", str(DATA / "bert-base-uncased.json"), "--seq-len", "128", "-o", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Imported by 'gemmap import hf'")
    workload = load_workload(out)
    qk = workload.problem("attn_qk")
    assert (qk.M, qk.K, qk.N, qk.repeat) == (128, 64, 128, 12 * 12)
    assert main(["map", str(out), "--search", "heuristic"]) == 0
    assert "ffn1" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "t5"}')
    assert main(["import", "hf", str(cfg), "-o", str(tmp_path / "x.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "supported: bert, gpt2, llama, mistral, vit" in err
    assert not (tmp_path / "x.yaml").exists()
    cfg.write_text("{not json")
    assert main(["import", "hf", str(cfg), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "malformed JSON at line 1" in capsys.readouterr().err
    # the output path is checked before the config is read
    assert main(["import", "hf", str(tmp_path / "missing.json"), "-o", str(tmp_path)]) == 2
    assert "it is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("stem", "shipped"),
    [("llama2-7b", "llama2-7b"), ("llama3-8b", "llama3-8b"), ("gpt2", "gpt2"), ("vit-base-patch16-224", "vit-base")],
)
def test_imports_build_the_shipped_workloads(tmp_path, stem, shipped):
    """The model card's config and the hand-written workload describe the same op graph."""
    out = tmp_path / f"{stem}.yaml"
    assert main(["import", "hf", str(DATA / f"{stem}.json"), "-o", str(out)]) == 0
    mine, theirs = load_workload(out), load_workload(shipped)
    assert (mine.problems, mine.nonlinear) == (theirs.problems, theirs.nonlinear)


@pytest.mark.parametrize(
    ("stem", "flags"),
    [("mistral-7b-v0.1", []), ("llama3-8b", ["--phase", "decode", "--kv-len", "4096", "--batch", "4"]),
     ("gpt2", ["--kv-len", "512"]), ("vit-base-patch16-224", ["--batch", "2"])],
)  # fmt: skip
def test_imports_map(tmp_path, capsys, stem, flags):
    out = tmp_path / f"{stem}.yaml"
    assert main(["import", "hf", str(DATA / f"{stem}.json"), *flags, "-o", str(out)]) == 0
    assert main(["map", str(out), "--search", "heuristic"]) == 0
    assert "total" in capsys.readouterr().out
