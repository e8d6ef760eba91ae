"""A Hugging Face ``config.json`` (a local file; nothing is downloaded) as a gemmap workload spec.

Each supported ``model_type`` maps its hyper-parameters onto a family of ``gemmap.workload``:

* ``bert`` -> ``model: bert``: ``num_hidden_layers``, ``hidden_size``, ``num_attention_heads``,
  ``intermediate_size``; ``seq_len`` 512, or ``max_position_embeddings`` if smaller.
* ``gpt2`` -> ``model: gpt``: ``n_layer``, ``n_embd``, ``n_head`` (multi-head: ``kv_heads = heads``),
  ``n_inner`` (absent or null: 4·``n_embd``, as ``GPT2MLP``), GELU FFN, LayerNorm, learned positions
  (no RoPE), ``vocab_size`` for the LM head; ``seq_len`` ``min(n_positions, 1024)``.
* ``llama``, ``mistral`` -> ``model: llama``: ``num_hidden_layers``, ``hidden_size``,
  ``num_attention_heads``, ``num_key_value_heads`` (absent: = heads), ``intermediate_size``,
  ``vocab_size``; ``hidden_act: silu`` -> ``ffn_kind: swiglu`` (the gated MLP); ``rms_norm_eps``
  present -> ``norm: rmsnorm``; ``rope: true``; ``seq_len`` ``min(max_position_embeddings, 2048)``.
  Mistral's ``sliding_window`` is not modelled, so a longer context is refused.
* ``vit`` -> ``model: vit``: the encoder sizes, ``image_size``, ``patch_size``, ``num_channels`` and
  the classifier's classes (``len(id2label)`` or ``num_labels``; none without either).

The overrides (``gemmap.workload.Overrides``, the family flags of ``gemmap map``) set the phase
(``prefill`` with ``seq_len`` tokens, ``decode`` against ``kv_len`` cached tokens), the lengths and
the batch. Bad input is one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gemmap.errors import GemmapError, did_you_mean, shown
from gemmap.specio import read_text
from gemmap.workload import Overrides

SUPPORTED = ("bert", "gpt2", "llama", "mistral", "vit")
PHASES = ("prefill", "decode")
DECODERS = ("gpt2", "llama", "mistral")
#: default prefill length of the decoder families when the command line gives none
LLAMA_SEQ_LEN = 2048
GPT2_SEQ_LEN = 1024
BERT_SEQ_LEN = 512


@dataclasses.dataclass(frozen=True)
class _Config:
    """A loaded config and where it came from (for error lines)."""

    data: Mapping[str, Any]
    source: str
    model_type: str

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def positive(self, key: str, default: int | None = None) -> int:
        """``data[key]`` as a positive whole number (``default`` if absent or null, when one is given)."""
        value = self.data.get(key)
        if value is None:
            if default is not None:
                return default
            raise GemmapError(f"{self.source}: missing '{key}' (needed for model_type {self.model_type})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GemmapError(f"{self.source}: '{key}' must be a positive whole number, got {shown(repr(value))}")
        return value


def load_config(path: str | Path) -> dict[str, Any]:
    """The JSON object of a local ``config.json``; one line if it cannot be read or is not an object."""
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise GemmapError(
            f"{shown(str(path))}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting too deep
        raise GemmapError(f"{shown(str(path))}: malformed JSON ({shown(str(exc))})") from None
    if not isinstance(data, dict):
        raise GemmapError(f"{path}: expected a JSON object (a Hugging Face config.json)")
    return data


def default_name(config: Mapping[str, Any], path: str | Path | None = None) -> str:
    """The workload's name: the config's ``_name_or_path`` (last part), else the file's stem (its folder
    for a file called ``config.json``), else the model type."""
    given = config.get("_name_or_path")
    if isinstance(given, str) and given.strip("/"):
        return given.strip("/").split("/")[-1]
    if path is not None:
        p = Path(path)
        stem = p.parent.name if p.stem == "config" and p.parent.name else p.stem
        if stem:
            return stem
    return str(config.get("model_type", "model"))


def workload_spec_from_config(
    config: Mapping[str, Any],
    overrides: Overrides | None = None,
    name: str | None = None,
    source: str = "config.json",
) -> dict[str, Any]:
    """The workload spec (the dict a workload YAML holds) of a Hugging Face config (module docstring);
    ``overrides`` are the family flags of ``gemmap map`` (phase, seq_len, kv_len, batch)."""
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise GemmapError(f"{source}: no 'model_type' (supported: {', '.join(SUPPORTED)})")
    if model_type not in SUPPORTED:
        raise GemmapError(
            f"{source}: model_type '{model_type}' is not supported{did_you_mean(model_type, SUPPORTED)} "
            f"(supported: {', '.join(SUPPORTED)})"
        )
    overrides = overrides or Overrides()
    if overrides.phase is not None and overrides.phase not in PHASES:
        raise GemmapError(f"phase '{overrides.phase}' is not one of {', '.join(PHASES)}")
    cfg = _Config(config, source, model_type)
    return {"name": name or default_name(config), **_FAMILIES[model_type](cfg, overrides)}


def _batch(options: Overrides) -> int:
    return 1 if options.batch is None else options.batch


def _encoder_only(cfg: _Config, options: Overrides) -> None:
    if options.phase is not None or options.kv_len is not None:
        raise GemmapError(
            f"{cfg.source}: --phase and --kv-len apply to decoder models ({', '.join(DECODERS)}); "
            f"{cfg.model_type} is an encoder"
        )


def _bert(cfg: _Config, options: Overrides) -> dict[str, Any]:
    _encoder_only(cfg, options)
    max_pos = cfg.positive("max_position_embeddings", BERT_SEQ_LEN)
    limit = f"max_position_embeddings {max_pos}"
    seq_len = _length(cfg, options.seq_len, min(BERT_SEQ_LEN, max_pos), max_pos, "--seq-len", limit)
    return {
        "model": "bert",
        "layers": cfg.positive("num_hidden_layers"),
        "hidden": cfg.positive("hidden_size"),
        "heads": cfg.positive("num_attention_heads"),
        "ffn": cfg.positive("intermediate_size"),
        "seq_len": seq_len,
        "batch": _batch(options),
    }


def _vit(cfg: _Config, options: Overrides) -> dict[str, Any]:
    _encoder_only(cfg, options)
    if options.seq_len is not None:
        raise GemmapError(f"{cfg.source}: --seq-len does not apply to vit (image_size and patch_size set the tokens)")
    image, patch = cfg.positive("image_size"), cfg.positive("patch_size")
    if image % patch:
        raise GemmapError(f"{cfg.source}: patch_size {patch} does not divide image_size {image}")
    spec: dict[str, Any] = {
        "model": "vit",
        "layers": cfg.positive("num_hidden_layers"),
        "hidden": cfg.positive("hidden_size"),
        "heads": cfg.positive("num_attention_heads"),
        "ffn": cfg.positive("intermediate_size"),
        "image": image,
        "patch": patch,
        "channels": cfg.positive("num_channels", 3),
    }
    classes = _classes(cfg)
    if classes is not None:
        spec["classes"] = classes
    spec["batch"] = _batch(options)
    return spec


def _classes(cfg: _Config) -> int | None:
    """The classifier's classes: ``len(id2label)``, else ``num_labels``, else None (no head)."""
    labels = cfg.data.get("id2label")
    if isinstance(labels, Mapping) and labels:
        return len(labels)
    return cfg.positive("num_labels") if cfg.has("num_labels") else None


#: activations gemmap costs as GELU (Hugging Face's names: ACT2FN in transformers/activations.py)
GELU_ACTS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python")
#: ... and as SiLU, the gate of the llama family's MLP
SILU_ACTS = ("silu", "swish")


def _gpt2(cfg: _Config, options: Overrides) -> dict[str, Any]:
    act = cfg.data.get("activation_function", "gelu_new")
    if act not in GELU_ACTS:
        raise GemmapError(f"{cfg.source}: activation_function '{act}': gemmap models gpt2's MLP with GELU only")
    hidden = cfg.positive("n_embd")
    n_positions = cfg.positive("n_positions", GPT2_SEQ_LEN)
    return {
        "model": "gpt",
        "layers": cfg.positive("n_layer"),
        "hidden": hidden,
        "heads": cfg.positive("n_head"),
        "kv_heads": cfg.positive("n_head"),
        "ffn": cfg.positive("n_inner", 4 * hidden),
        "ffn_kind": "gelu",
        "norm": "layernorm",
        "rope": False,
        "vocab": cfg.positive("vocab_size"),
        **_phase(cfg, options, min(n_positions, GPT2_SEQ_LEN), n_positions, f"n_positions {n_positions}"),
    }


def _llama(cfg: _Config, options: Overrides) -> dict[str, Any]:
    act = cfg.data.get("hidden_act", "silu")
    if act not in SILU_ACTS:
        raise GemmapError(
            f"{cfg.source}: hidden_act '{act}': gemmap models {cfg.model_type}'s gated MLP with SiLU (swiglu) only"
        )
    hidden, heads = cfg.positive("hidden_size"), cfg.positive("num_attention_heads")
    head_dim = cfg.data.get("head_dim")
    if head_dim is not None and heads * head_dim != hidden:
        raise GemmapError(
            f"{cfg.source}: head_dim {head_dim} x {heads} heads is not hidden_size {hidden}; "
            "gemmap's llama family has head_dim = hidden / heads"
        )
    kv_heads = cfg.positive("num_key_value_heads", heads)
    if heads % kv_heads:
        raise GemmapError(f"{cfg.source}: num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}")
    max_pos = cfg.positive("max_position_embeddings", LLAMA_SEQ_LEN)
    limit, limit_text = max_pos, f"max_position_embeddings {max_pos}"
    if cfg.has("sliding_window") and cfg.positive("sliding_window") < max_pos:
        limit = cfg.positive("sliding_window")
        limit_text = f"sliding_window {limit} (attention beyond the window is not modelled)"
    return {
        "model": "llama",
        "layers": cfg.positive("num_hidden_layers"),
        "hidden": hidden,
        "heads": heads,
        "kv_heads": kv_heads,
        "ffn": cfg.positive("intermediate_size"),
        "ffn_kind": "swiglu",
        "norm": "rmsnorm" if cfg.has("rms_norm_eps") else "layernorm",
        "rope": True,
        "vocab": cfg.positive("vocab_size"),
        **_phase(cfg, options, min(limit, LLAMA_SEQ_LEN), limit, limit_text),
    }


def _phase(cfg: _Config, options: Overrides, default_len: int, limit: int, limit_text: str) -> dict[str, Any]:
    """``phase`` and its length: ``seq_len`` for prefill, ``kv_len`` for decode; then ``batch``."""
    phase = options.phase or ("decode" if options.kv_len is not None else "prefill")
    if phase == "prefill":
        if options.kv_len is not None:
            raise GemmapError("--kv-len applies to --phase decode (prefill takes --seq-len)")
        seq_len = _length(cfg, options.seq_len, default_len, limit, "--seq-len", limit_text)
        return {"phase": "prefill", "seq_len": seq_len, "batch": _batch(options)}
    if options.seq_len is not None:
        raise GemmapError("--seq-len is the prefill length; for --phase decode give --kv-len (the cached tokens)")
    kv_len = _length(cfg, options.kv_len, default_len, limit, "--kv-len", limit_text)
    return {"phase": "decode", "kv_len": kv_len, "batch": _batch(options)}


def _length(cfg: _Config, given: int | None, default: int, limit: int, flag: str, limit_text: str) -> int:
    if given is None:
        return default
    if given < 1:
        raise GemmapError(f"{flag} must be a positive whole number, got {given}")
    if given > limit:
        raise GemmapError(f"{cfg.source}: {flag} {given} exceeds the model's {limit_text}")
    return given


_FAMILIES: dict[str, Callable[[_Config, Overrides], dict[str, Any]]] = {
    "bert": _bert,
    "gpt2": _gpt2,
    "llama": _llama,
    "mistral": _llama,
    "vit": _vit,
}


def header(config: Mapping[str, Any], source: str) -> tuple[str, ...]:
    """Comment lines for the written YAML: where it came from and what was read."""
    return (
        f"Imported by 'gemmap import hf' from {source} (model_type {config.get('model_type')}).",
        "Hyper-parameters as the config states them; edit phase, seq_len / kv_len and batch freely.",
    )


def import_config(path: str | Path, overrides: Overrides | None = None, name: str | None = None) -> dict[str, Any]:
    """Read a local ``config.json`` and return its workload spec (named ``name``, else after the
    config's ``_name_or_path`` or the file)."""
    config = load_config(path)
    return workload_spec_from_config(config, overrides, name or default_name(config, path), str(path))
