"""An ONNX model's graph as a gemmap workload in the explicit ``ops:`` format (``gemmap import onnx``).

The graph is walked after ``onnx.shape_inference.infer_shapes`` (static shapes needed; ``dims`` fixes symbolic
input dims such as ``batch``). Operators and what they become:

* ``MatMul`` ``A[..., M, K] · B[..., K, N]``: a matmul. With a 2-D (weight-like) ``B`` every leading
  dim of ``A`` folds into M (one GEMM over all rows); with batched operands the broadcast leading
  dims become ``repeat`` (e.g. attention's batch × heads). A 1-D operand is a single row / column.
* ``MatMulInteger`` and ``QLinearMatMul`` (int8 models, Gemmini's own datatype): as MatMul.
* ``Gemm``: a matmul with ``transA``/``transB`` applied (the bias ``C`` is folded into the accumulator,
  as Gemmini preloads a bias).
* ``Conv`` (2-D): a conv with its 7 dims, stride, padding, dilation and input H × W; ``group`` g > 1
  is g independent convs of C/g -> K/g channels (``repeat: g``); ``ConvInteger`` and ``QLinearConv`` the same. Unequal strides or dilations per
  axis and asymmetric padding have no gemmap conv and are skipped (named so).
* ``Softmax``, ``LayerNormalization``, ``RMSNormalization`` (opset 23), ``Gelu``, ``Add``: rows ×
  row_len of the reduced (softmax, the norms) or last axis. When the op's input comes straight from a MatMul/Gemm and the shapes agree
  (the op's rows are the matmul's M × repeat, its row length the matmul's N), it is written
  ``after:`` that matmul with the matmul's M, N and repeat, as the explicit format requires.

Everything else is **skipped**: counted by operator type, printed, and listed in the YAML's header
-- never costed at zero inside a total without saying so.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gemmap.errors import GemmapError, shown
from gemmap.specio import build, read_input
from gemmap.workload import ExplicitSpec, explicit_workload

INSTALL_HINT = "gemmap import onnx needs the 'onnx' package: pip install 'gemmap[onnx]' (or pip install onnx)"
#: where the two operands of the quantized variants sit among their inputs (the rest: scales, zero points)
OPERANDS = {"QLinearMatMul": (0, 3), "QLinearConv": (0, 3)}
ROW_OPS = {
    "Softmax": "softmax",
    "LayerNormalization": "layernorm",
    "RMSNormalization": "rmsnorm",
    "Gelu": "gelu",
    "Add": "add",
}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise GemmapError(INSTALL_HINT) from None
    return onnx


@dataclasses.dataclass(frozen=True)
class OnnxImport:
    """The workload spec (``name`` and ``ops``) and the operators left out, with their counts."""

    spec: dict[str, Any]
    skipped: tuple[tuple[str, int], ...]
    opset: int

    def skipped_text(self) -> str:
        return ", ".join(f"{op} x{n}" for op, n in self.skipped) or "none"

    def header(self, source: str) -> tuple[str, ...]:
        costed = collections.Counter(op["op"] for op in self.spec["ops"])
        return (
            f"Imported by 'gemmap import onnx' from {source} (opset {self.opset}).",
            "Costed: " + ", ".join(f"{kind} x{n}" for kind, n in costed.items()) + ".",
            f"Skipped (not costed, in no total): {self.skipped_text()}.",
        )


@dataclasses.dataclass(frozen=True)
class _Matmul:
    """An emitted matmul, for the ops that may follow it."""

    name: str
    M: int
    N: int
    repeat: int


class _Walk:
    """One pass over a shape-inferred graph, collecting ops and skipped operators."""

    def __init__(self, graph: Any, source: str, opset: int) -> None:
        self.source, self.opset = source, opset
        self.shapes: dict[str, tuple[int | str | None, ...] | None] = {}
        for vi in (*graph.input, *graph.value_info, *graph.output):
            self.shapes[vi.name] = _shape_of(vi)
        for init in graph.initializer:
            self.shapes[init.name] = tuple(int(d) for d in init.dims)
        self.initializers = {init.name for init in graph.initializer}
        self.ops: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self.matmuls: dict[str, _Matmul] = {}  # output tensor -> matmul
        self.skipped: collections.Counter[str] = collections.Counter()

    # -- helpers ------------------------------------------------------------------------

    def static(self, tensor: str, node: Any) -> tuple[int, ...]:
        """The static shape of ``tensor``, or one line naming the node, the tensor and what is unknown."""
        shape = self.shapes.get(tensor)
        where = f"{self.source}: node '{node.name or node.op_type}' ({node.op_type}): tensor '{tensor}'"
        if shape is None:
            raise GemmapError(f"{where} has an unknown shape; gemmap needs static shapes (export with fixed sizes)")
        symbolic = [d for d in shape if not isinstance(d, int)]
        if symbolic:
            shown = "[" + ", ".join(str(d if d is not None else "?") for d in shape) + "]"
            named = sorted({d for d in symbolic if isinstance(d, str)})
            fix = f"fix it with --dim {named[0]}=SIZE" if named else "export the model with fixed sizes"
            raise GemmapError(f"{where} has a dynamic shape {shown}; {fix}")
        return shape  # type: ignore[return-value]

    def name_of(self, node: Any, index: int) -> str:
        base = (node.name or f"{node.op_type.lower()}_{index}").strip() or f"op_{index}"
        name, i = base, 2
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def emit_matmul(self, node: Any, index: int, M: int, K: int, N: int, repeat: int) -> None:
        name = self.name_of(node, index)
        self.ops.append({"name": name, "op": "matmul", "M": M, "K": K, "N": N, "repeat": repeat})
        self.matmuls[node.output[0]] = _Matmul(name, M, N, repeat)

    # -- operators ----------------------------------------------------------------------

    def matmul(self, node: Any, index: int) -> None:
        a_at, b_at = OPERANDS.get(node.op_type, (0, 1))
        a, b = self.static(node.input[a_at], node), self.static(node.input[b_at], node)
        a = (1, *a) if len(a) == 1 else a
        b = (*b, 1) if len(b) == 1 else b
        K, N = a[-1], b[-1]
        if len(b) == 2:
            self.emit_matmul(node, index, math.prod(a[:-1]), K, N, 1)
        else:
            batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
            self.emit_matmul(node, index, a[-2], K, N, math.prod(batch))

    def gemm(self, node: Any, index: int) -> None:
        a, b = self.static(node.input[0], node), self.static(node.input[1], node)
        attrs = _attrs(node)
        M, K = (a[1], a[0]) if attrs.get("transA", 0) else (a[0], a[1])
        N = b[0] if attrs.get("transB", 0) else b[1]
        self.emit_matmul(node, index, M, K, N, 1)

    def conv(self, node: Any, index: int) -> None:
        x_at, w_at = OPERANDS.get(node.op_type, (0, 1))
        x, w, y = (self.static(t, node) for t in (node.input[x_at], node.input[w_at], node.output[0]))
        if len(x) != 4:
            self.skipped[f"Conv ({len(x) - 2}-D)"] += 1
            return
        attrs = _attrs(node)
        n, c, h, wd = x
        k, _, r, s = w
        _, _, p, q = y
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        pads = _conv_pads(attrs, (h, wd), (p, q), (r, s), strides, dilations)
        group = int(attrs.get("group", 1))
        if strides[0] != strides[1] or dilations[0] != dilations[1]:
            self.skipped["Conv (unequal strides or dilations)"] += 1
            return
        if pads is None or len(set(pads)) != 1:
            self.skipped["Conv (asymmetric padding)"] += 1
            return
        op = {
            "name": self.name_of(node, index), "op": "conv", "B": n, "C": c // group, "K": k // group,
            "P": p, "Q": q, "R": r, "S": s, "stride": strides[0], "padding": pads[0], "dilation": dilations[0],
            "H": h, "W": wd, "repeat": group,
        }  # fmt: skip
        self.ops.append(op)

    def row_op(self, node: Any, index: int) -> None:
        kind = ROW_OPS[node.op_type]
        shape = self.static(node.output[0], node)
        axis = self.axis(node, len(shape))
        # Softmax from opset 13 normalizes along one axis; before, and the norms, over the flattened tail
        row_len = shape[axis] if kind == "softmax" and self.opset >= 13 and shape else math.prod(shape[axis:])
        rows = math.prod(shape) // row_len
        op: dict[str, Any] = {"name": self.name_of(node, index), "op": kind, "rows": rows, "row_len": row_len}
        inputs = node.input if kind == "add" else node.input[:1]
        producer = next((self.matmuls[t] for t in inputs if t in self.matmuls), None)
        if producer is not None and row_len == producer.N and rows == producer.M * producer.repeat:
            op.update(rows=producer.M, repeat=producer.repeat, after=producer.name)
        else:
            op["repeat"] = 1
        self.ops.append(op)

    def axis(self, node: Any, rank: int) -> int:
        """The first reduced axis: ``axis`` (negative counted from the end); Gelu and Add the last."""
        if node.op_type in ("Gelu", "Add"):
            return max(rank - 1, 0)
        default = 1 if node.op_type == "Softmax" and self.opset < 13 else -1
        axis = int(_attrs(node).get("axis", default))
        return axis + rank if axis < 0 else axis


def _shape_of(vi: Any) -> tuple[int | str | None, ...] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in t.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or None)
    return tuple(out)


def _attrs(node: Any) -> dict[str, Any]:
    onnx = _onnx()
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv_pads(
    attrs: Mapping[str, Any],
    hw: tuple[int, int],
    pq: tuple[int, int],
    rs: tuple[int, int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> list[int] | None:
    """[top, left, bottom, right] padding, from ``pads`` or (``auto_pad``) from the shapes; None if a
    SAME padding is odd (asymmetric)."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        return [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    if auto == "VALID":
        return [0, 0, 0, 0]
    total = [max((o - 1) * st + (k - 1) * d + 1 - i, 0) for i, o, k, st, d in zip(hw, pq, rs, strides, dilations)]
    if any(t % 2 for t in total):
        return None
    return [total[0] // 2, total[1] // 2, total[0] // 2, total[1] // 2]


def _fix_dims(graph: Any, dims: Mapping[str, int]) -> None:
    """Give the graph inputs' symbolic dims named in ``dims`` their sizes (before shape inference)."""
    for vi in graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in dims:
                d.dim_value = dims[d.dim_param]


def _opset(model: Any) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)


def workload_from_model(model: Any, name: str, source: str, dims: Mapping[str, int] | None = None) -> OnnxImport:
    """Walk an in-memory ``onnx.ModelProto`` (module docstring)."""
    onnx = _onnx()
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    if dims:
        _fix_dims(model_copy.graph, dims)
    try:
        # not strict: an operator ONNX does not know (a vendor domain's) leaves its outputs unknown,
        # which is an error only where gemmap needs that shape (``_Walk.static`` names it)
        inferred = onnx.shape_inference.infer_shapes(model_copy)
    except Exception as exc:  # onnx raises InferenceError / ValidationError with multi-line text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GemmapError(f"{source}: shape inference failed: {first}") from None
    walk = _Walk(inferred.graph, source, _opset(inferred))
    handlers = {
        **dict.fromkeys(("MatMul", "MatMulInteger", "QLinearMatMul"), walk.matmul),
        "Gemm": walk.gemm,
        **dict.fromkeys(("Conv", "ConvInteger", "QLinearConv"), walk.conv),
        **dict.fromkeys(ROW_OPS, walk.row_op),
    }
    for index, node in enumerate(inferred.graph.node):
        handler = handlers.get(node.op_type)
        if handler is None:
            walk.skipped[node.op_type] += 1
        else:
            handler(node, index)
    spec = {"name": name, "ops": walk.ops}
    if not any(op["op"] in ("matmul", "conv") for op in walk.ops):
        skipped = ", ".join(f"{op} x{n}" for op, n in walk.skipped.most_common()) or "nothing"
        raise GemmapError(f"{source}: no MatMul, Gemm or 2-D Conv to map (skipped: {skipped})")
    explicit_workload(build(ExplicitSpec, spec, source), source)  # the written file will load
    return OnnxImport(spec, tuple(walk.skipped.most_common()), walk.opset)


#: the largest .onnx read (protobuf's own limit for one message is 2 GiB)
MAX_ONNX_BYTES = 2 * 1024**3


def import_onnx(path: str | Path, name: str | None = None, dims: Mapping[str, int] | None = None) -> OnnxImport:
    """Read an ``.onnx`` file and import its graph (module docstring); one line on any failure."""
    onnx = _onnx()
    path = Path(path)
    data = read_input(path, MAX_ONNX_BYTES)  # a regular file (a FIFO or device is refused, not read)
    try:
        model = onnx.load_model_from_string(data)
    except Exception:  # protobuf's DecodeError and friends: not an ONNX model
        raise GemmapError(f"{shown(str(path))}: not an ONNX model (the file does not parse as one)") from None
    return workload_from_model(model, name or path.stem, str(path), dims)
