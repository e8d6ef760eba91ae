"""Workloads: einsum problems, non-linear ops, the op graph, and the BERT expansion (DESIGN §3).

Every tensor operation is an einsum. A matmul is ``C[m,n] += A[m,k]·B[k,n]``; a convolution is
``O[b,k,p,q] += I[b,c,p·σ+r·δ−pad,q·σ+s·δ−pad]·W[k,c,r,s]`` (stride σ, dilation δ, padding).
:class:`Problem` keeps the GEMM view M = B·P·Q, K = C·R·S, N = K (im2col) that the GEMM mapper
and model use, and for a conv its :class:`~gemmap.conv.ConvShape` (``Problem.conv``), which the
conv mapping and model (:mod:`gemmap.conv`, :mod:`gemmap.convmodel`) cost on the real tensors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from pydantic.dataclasses import dataclass

from gemmap import specio
from gemmap.conv import ConvShape
from gemmap.errors import GemmapError, shown
from gemmap.specio import SPEC, Name, build, int_in, load_yaml, shipped

# every number of a workload has its physical range (the bounds and their reasons: gemmap/specio.py)
PosInt = int_in(specio.TENSOR_DIM)  # a tensor dim: M, K, N, channels, rows, hidden, sequence length
ConvInt = int_in(specio.CONV_PARAM)  # stride, padding, dilation, input H and W
Layers = int_in(specio.LAYERS)
Repeat = int_in(specio.REPEAT)
Batch = int_in(specio.BATCH)

NONLINEAR_KINDS = ("softmax", "layernorm", "rmsnorm", "gelu", "swiglu", "rope", "add")
#: tensors of ``rows × row_len`` an op reads (SwiGLU multiplies SiLU(gate) by up); the others read one
OPERANDS = {"swiglu": 2}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One tensor operation in GEMM form: ``C[M,N] += A[M,K]·B[K,N]`` (A activations, B weights).

    ``einsum`` and ``einsum_dims`` record the operation as written (a conv keeps its 7 dims);
    ``repeat`` is how many identical instances the workload runs; ``conv`` is the conv's shape
    (None for a matmul; M, K, N stay its im2col GEMM view).
    """

    name: str
    M: int
    K: int
    N: int
    repeat: int = 1
    op: str = "matmul"
    einsum: str = "C[m,n] += A[m,k]*B[k,n]"
    einsum_dims: tuple[tuple[str, int], ...] = ()
    conv: ConvShape | None = None

    @property
    def dims(self) -> dict[str, int]:
        return {"M": self.M, "K": self.K, "N": self.N}

    @property
    def macs(self) -> int:
        return self.M * self.K * self.N

    def shape_key(self) -> tuple[int, int, int]:
        """The GEMM view (M, K, N); for a conv its im2col view, which two different convs can share."""
        return (self.M, self.K, self.N)

    @property
    def layer_dims(self) -> dict[str, int]:
        """The dims as the workload states them: M, K, N for a matmul; for a conv its 7 named dims
        (B, K, C, P, Q, R, S) with stride, padding and dilation (and H, W when given)."""
        if self.conv is None:
            return self.dims
        c = self.conv
        out = {"B": c.n, "K": c.k, "C": c.c, "P": c.p, "Q": c.q, "R": c.r, "S": c.s}
        out.update(stride=c.stride, padding=c.padding, dilation=c.dilation)
        if c.h is not None:
            out["H"] = c.h
        if c.w is not None:
            out["W"] = c.w
        return out

    def key(self) -> tuple[int, ...]:
        """What a search result depends on besides the arch and the options: (M, K, N) for a matmul,
        and for a conv the GEMM view followed by every field of its :class:`ConvShape` (None as 0)."""
        if self.conv is None:
            return self.shape_key()
        fields = dataclasses.astuple(self.conv)
        return (*self.shape_key(), *(0 if v is None else int(v) for v in fields))

    @staticmethod
    def from_key(key: tuple[int, ...], name: str = "cached") -> Problem:
        """The problem of a :meth:`key` (named ``name``; repeat 1)."""
        M, K, N = key[:3]
        if len(key) == 3:
            return Problem(name, M, K, N)
        values = {}
        for f, v in zip(dataclasses.fields(ConvShape), key[3:], strict=True):
            if f.default is None:
                values[f.name] = None if v == 0 else v
            elif isinstance(f.default, bool):
                values[f.name] = bool(v)
            else:
                values[f.name] = v
        return Problem(name, M, K, N, op="conv", conv=ConvShape(**values))


@dataclasses.dataclass(frozen=True)
class NonlinearOp:
    """A row-wise or element-wise op on a matmul's output: ``rows`` rows of ``row_len`` elements.

    ``after`` names the producing matmul; ``residual`` marks a residual add folded in before it.
    """

    name: str
    kind: str
    rows: int
    row_len: int
    repeat: int = 1
    after: str | None = None

    @property
    def elements(self) -> int:
        return self.rows * self.row_len

    @property
    def operands(self) -> int:
        """How many ``rows × row_len`` tensors the op reads (:data:`OPERANDS`)."""
        return OPERANDS.get(self.kind, 1)


@dataclasses.dataclass(frozen=True)
class Workload:
    """An op graph: matmul problems and the non-linear ops that consume their outputs.

    ``sequence`` names every op in execution order where the family states one (pre-norm
    decoders run their norms before the block); empty, each matmul is followed by its consumers.
    """

    name: str
    problems: tuple[Problem, ...]
    nonlinear: tuple[NonlinearOp, ...] = ()
    sequence: tuple[str, ...] = ()

    @classmethod
    def of(cls, name: str, ops: list[Problem | NonlinearOp]) -> Workload:
        """The workload of ``ops`` in execution order."""
        problems = tuple(o for o in ops if isinstance(o, Problem))
        nonlinear = tuple(o for o in ops if isinstance(o, NonlinearOp))
        return cls(name, problems, nonlinear, tuple(o.name for o in ops))

    def problem(self, name: str) -> Problem:
        for p in self.problems:
            if p.name == name:
                return p
        from gemmap.errors import did_you_mean

        raise GemmapError(f"no layer '{shown(name)}' in workload {self.name}{did_you_mean(name, self.layer_names)}")

    @property
    def layer_names(self) -> list[str]:
        return [p.name for p in self.problems]

    def consumers(self, producer: str) -> list[NonlinearOp]:
        return [op for op in self.nonlinear if op.after == producer]


# --- YAML specs -------------------------------------------------------------------------


@dataclass(config=SPEC)
class BertSpec:
    """BERT by its hyper-parameters (DESIGN §3)."""

    name: Name
    model: Literal["bert"]
    layers: Layers = 12
    hidden: PosInt = 768
    heads: PosInt = 12
    ffn: PosInt = 3072
    seq_len: PosInt = 512
    batch: Batch = 1


@dataclass(config=SPEC)
class OpSpec:
    """One entry of an explicit op list. ``op`` picks which fields apply."""

    name: Name
    op: Literal["matmul", "conv", "softmax", "layernorm", "rmsnorm", "gelu", "swiglu", "rope", "add"]
    repeat: Repeat = 1
    # matmul
    M: PosInt | None = None
    K: PosInt | None = None
    N: PosInt | None = None
    # conv: batch B, channels C -> K, output P x Q, kernel R x S, stride, padding, dilation,
    # input H x W (optional: by default the smallest input giving P x Q)
    B: PosInt | None = None
    C: PosInt | None = None
    P: PosInt | None = None
    Q: PosInt | None = None
    R: PosInt | None = None
    S: PosInt | None = None
    stride: ConvInt = 1
    padding: ConvInt = 0
    dilation: ConvInt = 1
    H: ConvInt | None = None
    W: ConvInt | None = None
    # non-linear
    rows: PosInt | None = None
    row_len: PosInt | None = None
    after: Name | None = None


@dataclass(config=SPEC)
class ExplicitSpec:
    name: Name
    ops: Annotated[list[OpSpec], Field(max_length=100_000)]


def bert_workload(spec: BertSpec) -> Workload:
    """Expand BERT hyper-parameters into its matmuls and non-linear ops (one encoder layer × L)."""
    if spec.hidden % spec.heads:
        raise GemmapError(f"{spec.name}: heads ({spec.heads}) must divide hidden ({spec.hidden})")
    L, H, A, ffn, S, B = spec.layers, spec.hidden, spec.heads, spec.ffn, spec.seq_len, spec.batch
    d = H // A
    problems = (
        Problem("q_proj", B * S, H, H, L),
        Problem("k_proj", B * S, H, H, L),
        Problem("v_proj", B * S, H, H, L),
        Problem("attn_qk", S, d, S, L * A * B, op="bmm"),
        Problem("attn_av", S, S, d, L * A * B, op="bmm"),
        Problem("out_proj", B * S, H, H, L),
        Problem("ffn1", B * S, H, ffn, L),
        Problem("ffn2", B * S, ffn, H, L),
    )
    nonlinear = (
        NonlinearOp("softmax", "softmax", S, S, L * A * B, after="attn_qk"),
        NonlinearOp("res1", "add", B * S, H, L, after="out_proj"),
        NonlinearOp("ln1", "layernorm", B * S, H, L, after="out_proj"),
        NonlinearOp("gelu", "gelu", B * S, ffn, L, after="ffn1"),
        NonlinearOp("res2", "add", B * S, H, L, after="ffn2"),
        NonlinearOp("ln2", "layernorm", B * S, H, L, after="ffn2"),
    )
    return Workload(spec.name, problems, nonlinear)


def _need(op: OpSpec, fields: tuple[str, ...], source: str) -> list[int]:
    missing = [f for f in fields if getattr(op, f) is None]
    if missing:
        raise GemmapError(f"{source}: op '{op.name}' ({op.op}) needs {', '.join(missing)}")
    return [getattr(op, f) for f in fields]


#: the fields of :class:`OpSpec` each kind of op takes (besides name, op, repeat)
OP_FIELDS = {
    "matmul": {"M", "K", "N"},
    "conv": {"B", "C", "K", "P", "Q", "R", "S", "stride", "padding", "dilation", "H", "W"},
    **{kind: {"rows", "row_len", "after"} for kind in NONLINEAR_KINDS},
}


def _check_fields(op: OpSpec, source: str) -> None:
    """Refuse fields that do not apply to the op's kind (they would be silently ignored)."""
    defaults = {"stride": 1, "padding": 0, "dilation": 1}
    optional = (OP_FIELDS["conv"] | OP_FIELDS["matmul"] | OP_FIELDS["add"]) - set(defaults)
    given = {f for f in optional if getattr(op, f) is not None} | {
        f for f, v in defaults.items() if getattr(op, f) != v
    }
    extra = sorted(given - OP_FIELDS[op.op])
    if extra:
        raise GemmapError(f"{source}: op '{op.name}' ({op.op}) does not take {', '.join(extra)}")


def _conv_einsum(stride: int, dilation: int, padding: int) -> str:
    """The conv's einsum as written, e.g. ``O[b,k,p,q] += I[b,c,2p+r-3,2q+s-3]*W[k,c,r,s]``."""
    st = "" if stride == 1 else str(stride)
    dl = "" if dilation == 1 else f"{dilation}"
    pad = f"-{padding}" if padding else ""
    return f"O[b,k,p,q] += I[b,c,{st}p+{dl}r{pad},{st}q+{dl}s{pad}]*W[k,c,r,s]"


def conv_problem(name: str, shape: ConvShape, repeat: int) -> Problem:
    """The :class:`Problem` of a conv (checked: one line naming the layer when it is malformed)."""
    shape.check(name)
    c = shape
    dims = (("b", c.n), ("k", c.k), ("c", c.c), ("p", c.p), ("q", c.q), ("r", c.r), ("s", c.s))
    einsum = _conv_einsum(c.stride, c.dilation, c.padding)
    return Problem(name, c.n * c.p * c.q, c.c * c.r * c.s, c.k, repeat, "conv", einsum, dims, shape)


def explicit_workload(spec: ExplicitSpec, source: str) -> Workload:
    """Build a workload from an explicit op list (matmul, conv, and non-linear ops)."""
    problems: list[Problem] = []
    nonlinear: list[NonlinearOp] = []
    names: set[str] = set()
    for op in spec.ops:
        if op.name in names:
            raise GemmapError(f"{source}: duplicate op name '{op.name}'")
        names.add(op.name)
        _check_fields(op, source)
        if op.op == "matmul":
            M, K, N = _need(op, ("M", "K", "N"), source)
            problems.append(Problem(op.name, M, K, N, op.repeat))
        elif op.op == "conv":
            C, Ko, P, Q, R, S = _need(op, ("C", "K", "P", "Q", "R", "S"), source)
            shape = ConvShape(op.B or 1, Ko, C, P, Q, R, S, op.stride, op.padding, op.dilation, op.H, op.W)
            try:
                problems.append(conv_problem(op.name, shape, op.repeat))
            except GemmapError as exc:
                raise GemmapError(f"{source}: {exc}") from None
        else:
            rows, row_len = _need(op, ("rows", "row_len"), source)
            producers = {p.name: p for p in problems}
            if op.after is not None and op.after not in producers:
                raise GemmapError(f"{source}: op '{op.name}' comes after unknown matmul '{op.after}'")
            if op.after is not None and (rows, row_len) != (producers[op.after].M, producers[op.after].N):
                p = producers[op.after]
                raise GemmapError(
                    f"{source}: op '{op.name}' has {rows} rows of {row_len} but '{p.name}' produces {p.M} rows of {p.N}"
                )
            nonlinear.append(NonlinearOp(op.name, op.op, rows, row_len, op.repeat, op.after))
    if not problems:
        raise GemmapError(f"{source}: the workload has no matmul or conv op")
    return Workload(spec.name, tuple(problems), tuple(nonlinear), tuple(op.name for op in spec.ops))


@dataclasses.dataclass(frozen=True)
class Overrides:
    """Command-line overrides of a family's hyper-parameters (None: as the file says).

    ``seq_len`` applies to BERT and the decoders, ``batch`` to every family, ``phase`` and
    ``kv_len`` to the decoders (``gpt``, ``llama``); anything else is refused in one line.
    """

    seq_len: int | None = None
    batch: int | None = None
    phase: str | None = None
    kv_len: int | None = None

    def given(self) -> dict[str, int | str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


#: the overrides each family takes
_OVERRIDABLE = {
    "bert": {"seq_len", "batch"},
    "gpt": {"seq_len", "batch", "phase", "kv_len"},
    "llama": {"seq_len", "batch", "phase", "kv_len"},
    "vit": {"batch"},
    "ops": set(),
}


#: the range of each numeric override (the Python API's values are checked as the flags' are)
_OVERRIDE_BOUNDS = {"seq_len": specio.TENSOR_DIM, "kv_len": specio.TENSOR_DIM, "batch": specio.BATCH}


def load_workload(path: str | Path, *, overrides: Overrides | None = None) -> Workload:
    """Load a workload YAML: a model family by its hyper-parameters (``model: bert``, ``gpt``,
    ``llama``, ``vit``) or an explicit ``ops`` list (a path, or the name of a shipped workload
    such as ``bert`` or ``workloads/resnet50.yaml``). ``overrides`` replace the file's
    hyper-parameters."""
    from gemmap import families  # families builds on this module's types

    path = shipped(path, "workloads")
    data = load_yaml(path)
    source = shown(str(path))
    given = (overrides or Overrides()).given()
    for name, bound in _OVERRIDE_BOUNDS.items():
        if name in given:
            specio.check_value(given[name], bound, "--" + name.replace("_", "-"))
    family = "ops" if "ops" in data and "model" not in data else data.get("model", "bert")
    allowed = _OVERRIDABLE.get(str(family), set())
    refused = sorted(set(given) - allowed)
    if refused:
        flags = ", ".join("--" + k.replace("_", "-") for k in refused)
        what = "an explicit op list" if family == "ops" else f"model: {shown(family)}"
        raise GemmapError(f"{source}: {flags} does not apply to {what}")
    data = {**data, **given}
    if family == "ops":
        return explicit_workload(build(ExplicitSpec, data, source), source)
    if family in ("gpt", "llama"):
        return families.decoder_workload(build(families.DecoderSpec, data, source))
    if family == "vit":
        return families.vit_workload(build(families.VitSpec, data, source))
    return bert_workload(build(BertSpec, data, source))
