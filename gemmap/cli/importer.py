"""``gemmap import hf|onnx``: a Hugging Face config.json or an ONNX model as a workload YAML."""

from __future__ import annotations

import argparse
import re

from gemmap.cli.common import add_workload_args, overrides_from_args
from gemmap.errors import GemmapError
from gemmap.interop import hf
from gemmap.interop.spec_yaml import workload_yaml
from gemmap.report import atomic_write, check_output_file

HF_EXAMPLES = """examples:
  gemmap import hf llama-2-7b/config.json -o workloads/llama2-7b.yaml
  gemmap import hf config.json --phase decode --kv-len 4096 --batch 8 -o llama-decode.yaml
  gemmap import hf bert-base-uncased/config.json --seq-len 128 -o bert128.yaml && gemmap map bert128.yaml

Reads a local config.json (nothing is downloaded) of model_type bert, gpt2, llama, mistral or vit
and writes the workload's hyper-parameters: bert -> model: bert; gpt2 -> model: gpt; llama and
mistral -> model: llama (num_key_value_heads for grouped-query attention, hidden_act silu ->
ffn_kind swiglu, rms_norm_eps -> norm rmsnorm, rope); vit -> model: vit (image, patch, channels,
classes). Defaults: prefill of min(context, 1024) tokens for gpt2, min(context, 2048) for llama and
mistral, min(context, 512) for bert; batch 1. --kv-len alone means --phase decode.
"""

ONNX_EXAMPLES = """examples:
  gemmap import onnx model.onnx -o workloads/model.yaml
  gemmap import onnx bert.onnx --dim batch=1 --dim sequence=128 -o bert-onnx.yaml

Needs the onnx package (pip install 'gemmap[onnx]'). Runs ONNX shape inference and writes the
explicit ops: format: MatMul/Gemm (and int8 MatMulInteger, QLinearMatMul) -> matmul (batched
MatMul's leading dims -> repeat), 2-D Conv (ConvInteger, QLinearConv) -> conv (7 dims, stride,
padding, dilation, H x W; group g -> repeat g), Softmax, LayerNormalization, RMSNormalization, Gelu,
Add -> row ops (after: the producing matmul where the shapes agree). Every other operator is
skipped, counted, printed and listed in the file's header: it is not in any total. Symbolic input
dims (batch, sequence) need --dim NAME=SIZE.
"""


def _dim(text: str) -> tuple[str, int]:
    m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*(\d+)\s*", text)
    if m is None or int(m.group(2)) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE with a positive size, e.g. batch=1, got '{text}'")
    return m.group(1), int(m.group(2))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="a Hugging Face config.json or an ONNX model as a workload YAML",
                       epilog=HF_EXAMPLES + "\n" + ONNX_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    kinds = p.add_subparsers(dest="source_kind", required=True, metavar="{hf,onnx}")
    h = kinds.add_parser("hf", help="a local Hugging Face config.json", epilog=HF_EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    h.add_argument("config", metavar="CONFIG.json", help="a Hugging Face config.json (local file)")
    h.add_argument("-o", "--out", required=True, metavar="WORKLOAD.yaml", help="the workload YAML to write")
    h.add_argument("--name", help="the workload's name (default: from the config or the file name)")
    add_workload_args(h)
    h.set_defaults(run=run_hf)
    o = kinds.add_parser("onnx", help="an ONNX model (needs the onnx package)", epilog=ONNX_EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    o.add_argument("model", metavar="MODEL.onnx", help="an ONNX model file")
    o.add_argument("-o", "--out", required=True, metavar="WORKLOAD.yaml", help="the workload YAML to write")
    o.add_argument("--name", help="the workload's name (default: the file's name)")
    o.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=SIZE",
                   help="size of a symbolic input dim, e.g. batch=1 (repeatable)")  # fmt: skip
    o.set_defaults(run=run_onnx)


def run_hf(args: argparse.Namespace) -> int:
    out = check_output_file(args.out, "-o")
    config = hf.load_config(args.config)
    spec = hf.import_config(args.config, overrides_from_args(args), args.name)
    atomic_write(out, workload_yaml(spec, hf.header(config, args.config)))
    print(f"wrote {out} ({spec['name']}: model {spec['model']}, {spec['layers']} layers)")
    return 0


def run_onnx(args: argparse.Namespace) -> int:
    out = check_output_file(args.out, "-o")
    from gemmap.interop.onnx_graph import import_onnx

    dims = dict(args.dim)
    if len(dims) != len(args.dim):
        raise GemmapError("--dim: a dim is given twice")
    result = import_onnx(args.model, args.name, dims)
    atomic_write(out, workload_yaml(result.spec, result.header(args.model)))
    print(f"wrote {out} ({len(result.spec['ops'])} ops; skipped, not costed: {result.skipped_text()})")
    return 0
