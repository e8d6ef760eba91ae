"""Transformer families beyond BERT: decoder LLMs (``model: gpt``, ``model: llama``) in their
prefill and decode phases, and the ViT encoder (``model: vit``), expanded into the op graph of
:mod:`gemmap.workload` (DESIGN §3).

**A decoder layer** (pre-norm, as GPT-2 and LLaMA): ``norm1 → q/k/v projections (→ RoPE) →
attention → out_proj (+ residual) → norm2 → FFN (+ residual)``. With ``M`` tokens in flight
(``batch·seq_len`` in prefill, ``batch`` in decode), hidden ``H``, ``A`` query heads and ``G``
KV heads (grouped-query attention; ``G = A`` is multi-head), head dim ``d = H/A`` and
``g = A/G`` query heads per KV head:

* projections ``q_proj`` M×H×H, ``k_proj``/``v_proj`` M×H×(G·d), ``out_proj`` M×H×H;
* FFN ``ffn1`` M×H×F, GELU, ``ffn2`` M×F×H; or SwiGLU ``gate`` and ``up`` M×H×F, ``swiglu``
  (SiLU(gate)·up, two operands), ``down`` M×F×H;
* attention per KV head, the ``g`` query heads that share it stacked as rows (one GEMM reads
  the head's K and V once for all of them): ``attn_qk`` (g·rows)×d×keys, Softmax over each row of
  ``keys`` scores, ``attn_av`` (g·rows)×keys×d; ``layers·G·batch`` instances;
* the norms precede their block (pre-norm), so they read the residual stream from memory: they
  are ops after no matmul (``after: None``) and never fusion sites; the residual adds fold into
  ``out_proj`` and ``ffn2``/``down`` as Gemmini's bias D, as in BERT;
* RoPE rotates q and k after their projections (``rope_q``, ``rope_k``); GPT-2's learned
  positions are an embedding-table add outside the layers and are not modelled;
* ``vocab`` adds the final norm and the LM head (batch×H×vocab: the logits of each sequence's
  last token, which is what generation consumes), once per model.

**Prefill** (``seq_len`` = S tokens per sequence, causal). Only the lower triangle of the scores
is needed; the software skips the tiles above the diagonal by splitting the queries into
``causal_blocks`` = b row blocks of S/b queries (the last takes the remainder) and running block
i against its causal prefix of keys only: ``attn_qk.i`` (g·S_i)×d×K_i and ``attn_av.i``
(g·S_i)×K_i×d, with K_i the keys up to the block's last query. Each block is an ordinary
rectangular GEMM, so the mapper, the model and the bounds are unchanged. The work done is
``(b+1)/(2b)`` of the full S×S (the diagonal blocks are computed whole, their upper halves
masked in the Softmax pass): 62.5 % at b = 4 against the ideal 50 %; b = 1 computes the full
square.

**Decode** (one new token per sequence, ``kv_len`` cached tokens). M = batch for every
projection (GEMV-shaped at batch 1: Gemmini pads the rows to DIM, and the weights are read once
per step, so the layer is bound by DRAM). Attention per KV head is ``attn_qk`` g×d×(kv_len+1) and
``attn_av`` g×(kv_len+1)×d: the new token attends to the cache and to itself. The K and V caches
live in DRAM: they are the B operand of ``attn_qk``/``attn_av``, so the model charges their read
every step as that operand's DRAM traffic; the new token's K and V are the outputs of
``k_proj``/``v_proj``, whose DRAM write is the cache append.

**ViT** (Dosovitskiy et al. 2021): the patch embedding is a conv (``channels``→H, kernel and
stride ``patch``) over an ``image``×``image`` input, giving ``(image/patch)²`` patches plus the
class token as the sequence; then pre-norm LayerNorm encoder layers with GELU and full
(non-causal) attention, and optionally the classifier head on the class token.
"""

from __future__ import annotations

from typing import Literal

from pydantic.dataclasses import dataclass

from gemmap.conv import ConvShape
from gemmap.errors import GemmapError
from gemmap.specio import SPEC, Name, StrictBool
from gemmap.workload import Batch, Layers, NonlinearOp, PosInt, Problem, Workload, conv_problem


@dataclass(config=SPEC)
class DecoderSpec:
    """A decoder LLM by its hyper-parameters (``model: gpt`` or ``model: llama``).

    Left out, ``kv_heads`` is ``heads`` (multi-head attention), ``ffn`` is 4·hidden, ``ffn_kind``,
    ``norm`` and ``rope`` are the family's (GPT: GELU, LayerNorm, learned positions; LLaMA:
    SwiGLU, RMSNorm, RoPE), and ``kv_len`` (decode) is ``seq_len``.
    """

    name: Name
    model: Literal["gpt", "llama"]
    layers: Layers
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None
    ffn: PosInt | None = None
    ffn_kind: Literal["gelu", "swiglu"] | None = None
    norm: Literal["layernorm", "rmsnorm"] | None = None
    rope: StrictBool | None = None
    vocab: PosInt | None = None
    phase: Literal["prefill", "decode"] = "prefill"
    seq_len: PosInt = 2048
    kv_len: PosInt | None = None
    batch: Batch = 1
    causal_blocks: PosInt = 4


@dataclass(config=SPEC)
class VitSpec:
    """A Vision Transformer encoder by its hyper-parameters (``model: vit``)."""

    name: Name
    model: Literal["vit"]
    layers: Layers
    hidden: PosInt
    heads: PosInt
    ffn: PosInt
    image: PosInt = 224
    patch: PosInt = 16
    channels: PosInt = 3
    classes: PosInt | None = None
    batch: Batch = 1


#: the family defaults of :class:`DecoderSpec` (ffn_kind, norm, rope)
FAMILY = {"gpt": ("gelu", "layernorm", False), "llama": ("swiglu", "rmsnorm", True)}


def causal_splits(seq: int, blocks: int) -> list[tuple[int, int]]:
    """(queries, keys) of each causal row block: ``blocks`` blocks of ⌊seq/blocks⌋ queries (the
    last takes the rest), block i seeing the keys up to its last query."""
    blocks = min(blocks, seq)
    size = seq // blocks
    out, end = [], 0
    for i in range(blocks):
        rows = size if i < blocks - 1 else seq - size * (blocks - 1)
        end += rows
        out.append((rows, end))
    return out


def _heads(name: str, hidden: int, heads: int, kv_heads: int) -> tuple[int, int]:
    """(head dim, query heads per KV head), or a one-line error."""
    if hidden % heads:
        raise GemmapError(f"{name}: heads ({heads}) must divide hidden ({hidden})")
    if heads % kv_heads:
        raise GemmapError(f"{name}: kv_heads ({kv_heads}) must divide heads ({heads})")
    return hidden // heads, heads // kv_heads


def _attention(rows: int, keys: int, d: int, g: int, repeat: int, suffix: str) -> list[Problem | NonlinearOp]:
    """One attention block of ``rows`` queries per head against ``keys`` keys, ``g`` heads stacked:
    q·Kᵀ, the Softmax over each row of scores, then ·V."""
    qk = f"attn_qk{suffix}"
    return [
        Problem(qk, g * rows, d, keys, repeat, op="bmm"),
        NonlinearOp(f"softmax{suffix}", "softmax", g * rows, keys, repeat, after=qk),
        Problem(f"attn_av{suffix}", g * rows, keys, d, repeat, op="bmm"),
    ]


def decoder_workload(spec: DecoderSpec) -> Workload:
    """Expand a decoder LLM into one layer's matmuls and non-linear ops (× ``layers``)."""
    ffn_kind, norm, rope = (
        given if given is not None else default
        for given, default in zip((spec.ffn_kind, spec.norm, spec.rope), FAMILY[spec.model], strict=True)
    )
    L, H, A, B = spec.layers, spec.hidden, spec.heads, spec.batch
    G = spec.kv_heads or A
    F = spec.ffn or 4 * H
    d, g = _heads(spec.name, H, A, G)
    M = B * spec.seq_len if spec.phase == "prefill" else B
    ops: list[Problem | NonlinearOp] = [
        NonlinearOp("norm1", norm, M, H, L),
        Problem("q_proj", M, H, H, L),
        Problem("k_proj", M, H, G * d, L),
        Problem("v_proj", M, H, G * d, L),
    ]
    if rope:
        ops += [
            NonlinearOp("rope_q", "rope", M, H, L, after="q_proj"),
            NonlinearOp("rope_k", "rope", M, G * d, L, after="k_proj"),
        ]
    if spec.phase == "decode":
        keys = (spec.kv_len if spec.kv_len is not None else spec.seq_len) + 1
        blocks = [(1, keys, "")]
    else:
        splits = causal_splits(spec.seq_len, spec.causal_blocks)
        blocks = [(r, k, f".{i}" if len(splits) > 1 else "") for i, (r, k) in enumerate(splits)]
    for rows, keys, suffix in blocks:
        ops += _attention(rows, keys, d, g, L * G * B, suffix)
    ops += [
        Problem("out_proj", M, H, H, L),
        NonlinearOp("res1", "add", M, H, L, after="out_proj"),
        NonlinearOp("norm2", norm, M, H, L),
    ]
    if ffn_kind == "gelu":
        ops += [
            Problem("ffn1", M, H, F, L),
            NonlinearOp("gelu", "gelu", M, F, L, after="ffn1"),
            Problem("ffn2", M, F, H, L),
            NonlinearOp("res2", "add", M, H, L, after="ffn2"),
        ]
    else:
        ops += [
            Problem("gate", M, H, F, L),
            Problem("up", M, H, F, L),
            NonlinearOp("swiglu", "swiglu", M, F, L, after="up"),
            Problem("down", M, F, H, L),
            NonlinearOp("res2", "add", M, H, L, after="down"),
        ]
    if spec.vocab is not None:
        ops += [NonlinearOp("final_norm", norm, B, H, 1), Problem("lm_head", B, H, spec.vocab, 1)]
    return Workload.of(spec.name, ops)


def vit_workload(spec: VitSpec) -> Workload:
    """Expand a ViT: the patch-embedding conv, ``layers`` encoder layers, the optional head."""
    if spec.image % spec.patch:
        raise GemmapError(f"{spec.name}: patch ({spec.patch}) must divide image ({spec.image})")
    L, H, A, F, B = spec.layers, spec.hidden, spec.heads, spec.ffn, spec.batch
    d, _ = _heads(spec.name, H, A, A)
    side = spec.image // spec.patch
    S = side * side + 1  # the patches and the class token
    M = B * S
    embed = ConvShape(B, H, spec.channels, side, side, spec.patch, spec.patch, spec.patch, 0, 1, spec.image, spec.image)
    ops: list[Problem | NonlinearOp] = [
        conv_problem("patch_embed", embed, 1),
        NonlinearOp("norm1", "layernorm", M, H, L),
        *(Problem(n, M, H, H, L) for n in ("q_proj", "k_proj", "v_proj")),
        *_attention(S, S, d, 1, L * A * B, ""),
        Problem("out_proj", M, H, H, L),
        NonlinearOp("res1", "add", M, H, L, after="out_proj"),
        NonlinearOp("norm2", "layernorm", M, H, L),
        Problem("ffn1", M, H, F, L),
        NonlinearOp("gelu", "gelu", M, F, L, after="ffn1"),
        Problem("ffn2", M, F, H, L),
        NonlinearOp("res2", "add", M, H, L, after="ffn2"),
    ]
    if spec.classes is not None:
        ops += [NonlinearOp("final_norm", "layernorm", B, H, 1), Problem("head", B, H, spec.classes, 1)]
    return Workload.of(spec.name, ops)
