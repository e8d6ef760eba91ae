"""Safe reading of input files and validation of spec files into frozen pydantic dataclasses.

Every spec (architecture, workload) goes through :func:`load_yaml` (a regular file of at most
:data:`MAX_INPUT_BYTES`, ``yaml.safe_load`` semantics: no ``!!python/object`` tags, duplicate keys
refused, merge keys accepted, nesting at most :data:`MAX_YAML_DEPTH`, integers of sane length) and
:func:`build` (pydantic validation with unknown keys forbidden), so that a typo or a bad size
becomes one :class:`GemmapError` line naming the file and the key.

**Bounds.** Every number a spec or a flag takes has a documented physical range, stated once here
as an annotated type (:func:`int_in`, :func:`float_in`) that the arch and workload specs use, and
as a :class:`Bound` that the command-line parsers use (:func:`parse_int`, :func:`parse_float`):
integers are integers (``true`` is not 1, ``1.0`` is not 1), floats are finite, booleans are
booleans (``0`` is not false).
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pydantic
import yaml
from pydantic import ConfigDict, Field

from gemmap.errors import GemmapError, did_you_mean, shown

T = TypeVar("T")

#: the pydantic config of every spec dataclass: unknown keys refused, instances frozen
SPEC = ConfigDict(extra="forbid", frozen=True)

# --- bounds ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bound:
    """A range ``lo ≤ x ≤ hi`` (``lo < x`` when ``lo_open``) and the reason for its limits."""

    lo: float
    hi: float
    why: str
    lo_open: bool = False

    def holds(self, x: float) -> bool:
        return math.isfinite(x) and (x > self.lo if self.lo_open else x >= self.lo) and x <= self.hi

    def text(self) -> str:
        lo = f"{self.lo:g}"
        hi = f"{int(self.hi):,}" if self.hi == int(self.hi) else f"{self.hi:g}"
        return f"{'>' if self.lo_open else '≥'} {lo} and ≤ {hi}"


#: PE rows/cols: Gemmini builds 4–64, TPU v1's 256 is the largest systolic array shipped; 4× that
ARRAY_DIM = Bound(1, 1024, "PEs per side")
#: KiB of one SRAM: 1 GiB is 20× the largest on-die cache of a shipped accelerator (H100 L2, 50 MB)
SRAM_KIB = Bound(1, 1 << 20, "KiB (1 GiB)")
#: SRAM banks: one per PE column at most, and arrays stop at 1024 columns
BANKS = Bound(1, 1024, "banks")
#: bytes per element: int8 … fp64 are 1–8; 16 leaves room for complex or wide accumulators
ELEM_BYTES = Bound(1, 16, "bytes per element")
#: bytes per cycle of a bus: 64 KiB/cycle is 64 TB/s at 1 GHz, ~20× an HBM3 memory system
BANDWIDTH = Bound(0, 1 << 16, "bytes per cycle", lo_open=True)
#: bytes of one DMA request or bus beat: a 4 KiB page is the most a DMA moves in one burst; 16× that
TRANSFER_BYTES = Bound(1, 1 << 16, "bytes")
#: queue depths, in-flight requests, elements per cycle: bounded by the 1024-wide array and its rows
COUNT = Bound(1, 1 << 16, "entries")
#: width of a hardware loop iterator (LoopConv's 16-bit input-loader registers): 8-bit counters are
#: the narrowest an unroller uses, 32 bits the widest address-sized one
ITERATOR_BITS = Bound(8, 32, "bits")
#: passes over a row (Softmax/LayerNorm read each row 1–3 times)
PASSES = Bound(1, 64, "passes")
#: cycles of a latency or a per-element/per-tile software cost: 10⁶ cycles is 1 ms at 1 GHz,
#: 10⁴ × a DRAM round trip
CYCLES = Bound(0, 1e6, "cycles")
CYCLES_POS = Bound(1, 1e6, "cycles")
#: pJ per access (byte, MAC, element or cycle): 1 µJ is 10⁴ × a DRAM access of a 64-byte line
ENERGY_PJ = Bound(0, 1e6, "pJ (1 µJ)")
#: exponent of the SRAM energy power law: 0.5 is what wires give; beyond quartic is not physical
EXPONENT = Bound(0, 4, "")
#: the SRAM capacity the energy law is referenced to (KiB), within the SRAM range
REF_KIB = Bound(0, SRAM_KIB.hi, "KiB", lo_open=True)
#: mm² per KiB of SRAM or per PE: 10⁴ mm² is 10× the reticle limit (~860 mm²)
AREA_MM2 = Bound(0, 1e4, "mm²")
#: clock in MHz: 1 MHz is slower than any accelerator ever clocked, 100 GHz 20× any CMOS one
FREQUENCY_MHZ = Bound(1, 1e5, "MHz")
#: a tensor dim (M, K, N, channels, rows, sequence length, hidden, FFN width): 10⁷ is beyond any
#: context length or width trained; with the MAC cap below, every count stays exact in int64
TENSOR_DIM = Bound(1, 10_000_000, "elements")
#: conv stride/padding/dilation and input height/width (0 allowed: no padding)
CONV_PARAM = Bound(0, TENSOR_DIM.hi, "elements")
#: encoder depth: the deepest trained Transformers have ~10³ layers
LAYERS = Bound(1, 10_000, "layers")
#: identical instances of an op in a workload (layers × heads × batch)
REPEAT = Bound(1, 1_000_000_000, "instances")
#: batch size
BATCH = Bound(1, 1_000_000, "sequences")
#: (the MACs of one layer are capped where the searches start: gemmap.search.MAX_MACS, 2**50)

#: random valid mappings per search or per CDF layer: the batched model holds ~0.4 KB of arrays per
#: sample (10⁶ peak at 0.42 GB, measured on bert-tiny); a CDF is smooth long before
SAMPLES = Bound(1, 1_000_000, "mappings")
#: random seeds (numpy and CP-SAT take 32 bits)
SEED = Bound(0, 2**32 - 1, "")
#: seconds per search: one day per layer
SECONDS = Bound(0, 86_400, "seconds", lo_open=True)
#: the "near best" tolerance of sweep: a fraction, up to 100 (within 101× of the best)
TOLERANCE = Bound(0, 100, "", lo_open=True)
#: local worker processes
WORKERS = Bound(1, 1024, "processes")
#: a device's memory (deploy): 16 TiB is ~100× the memory of the largest accelerator package
DEVICE_MIB = Bound(0, 2**24, "MiB", lo_open=True)
#: storage read bandwidth (deploy): 10 TB/s is ~100× a PCIe 5 x16 NVMe array
STORAGE_MB_S = Bound(0, 1e7, "MB/s", lo_open=True)
#: storage access latency (deploy): 10 s is beyond any device that still answers
LATENCY_US = Bound(0, 1e7, "µs")
#: a shared DRAM channel (pipeline): 100 TB/s is ~30× an HBM3 memory system
CHANNEL_GB_S = Bound(0, 1e5, "GB/s", lo_open=True)
#: a throughput floor (pipeline): 10¹² inferences per second is beyond any accelerator
THROUGHPUT = Bound(0, 1e12, "inferences/s", lo_open=True)

#: an integer written with more digits than this is refused as text, before Python converts it
MAX_INT_DIGITS = 40


def int_in(b: Bound) -> Any:
    """An annotated strict int within ``b`` (for pydantic spec fields)."""
    return Annotated[int, Field(strict=True, ge=int(b.lo) + (1 if b.lo_open else 0), le=int(b.hi))]


def float_in(b: Bound) -> Any:
    """An annotated strict, finite float within ``b`` (an int is accepted as a float)."""
    lo = {"gt": b.lo} if b.lo_open else {"ge": b.lo}
    return Annotated[float, Field(strict=True, allow_inf_nan=False, le=b.hi, **lo)]


#: booleans only as booleans (YAML true/false), never 0, 1 or "yes" as a string
StrictBool = Annotated[bool, Field(strict=True)]
#: a name: one printable line of at most 200 characters (it is echoed in tables, CSVs and errors)
Name = Annotated[str, Field(strict=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: a name that may be empty (the arch's: the optimal search normalises it away)
Label = Annotated[str, Field(strict=True, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _parse(text: str, kind: type, b: Bound, what: str) -> float:
    """``text`` as a number of ``kind`` within ``b``, else ValueError with a one-line reason."""
    t = text.strip()
    if len(t) > MAX_INT_DIGITS + 2:
        raise ValueError(f"expected {what} {b.text()}, got '{shown(text)}' (too long)")
    try:
        value = kind(t)
    except ValueError:
        raise ValueError(f"expected {what}, got '{shown(text)}'") from None
    if not b.holds(value):
        raise ValueError(f"expected {what} {b.text()}, got '{shown(text)}'")
    return value


def parse_int(text: str, b: Bound) -> int:
    """A whole number within ``b`` (ValueError with a one-line reason otherwise)."""
    return int(_parse(text, int, b, "a whole number"))


def parse_float(text: str, b: Bound) -> float:
    """A finite number within ``b`` (ValueError with a one-line reason otherwise)."""
    return float(_parse(text, float, b, "a number"))


def check_value(value: float, b: Bound, what: str) -> None:
    """Refuse a number already parsed (e.g. from the Python API) outside ``b``, naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not b.holds(value):
        raise GemmapError(f"{what}: expected a number {b.text()}, got {shown(value)}")


def check_samples(n: int) -> None:
    """Refuse a sample count outside :data:`SAMPLES` (every sampler calls this before allocating)."""
    if isinstance(n, bool) or not isinstance(n, int) or not SAMPLES.holds(n):
        raise GemmapError(
            f"--samples: expected a whole number of mappings {SAMPLES.text()} (the sampling ceiling), got {shown(n)}"
        )


# --- reading input files -------------------------------------------------------------------

#: the largest input file read (specs, mapping YAMLs, measurement CSVs, sweep state)
MAX_INPUT_BYTES = 16 * 1024 * 1024
#: the deepest nesting of a YAML spec (specs are 3 deep; room for hand-written mapping files)
MAX_YAML_DEPTH = 32

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def kind_of(mode: int) -> str:
    """What a non-regular file is, in words (``a FIFO (named pipe)``, ``a directory``, …)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_input(path: str | Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; a FIFO, a device or a
    directory is refused by its kind without blocking (opened non-blocking, checked by fstat)."""
    name = shown(str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            raise GemmapError(f"{name}: cannot read file (it is a directory)") from None
        raise GemmapError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise GemmapError(f"{name}: cannot read file (it is {kind_of(st.st_mode)}, not a regular file)")
        if st.st_size > limit:
            raise GemmapError(f"{name}: cannot read file (larger than the limit of {limit:,} bytes)")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise GemmapError(f"{name}: cannot read file (larger than the limit of {limit:,} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise GemmapError(f"{name}: cannot read file ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def read_text(path: str | Path, limit: int = MAX_INPUT_BYTES, encoding: str = "utf-8") -> str:
    """:func:`read_input` decoded as UTF-8 text (one line naming the file if it is not)."""
    try:
        return read_input(path, limit).decode(encoding)
    except UnicodeDecodeError:
        raise GemmapError(f"{shown(str(path))}: cannot read file (not UTF-8 text)") from None


#: the architecture and workload files shipped inside the package (arch/ and workloads/ of a checkout
#: are links to them), so an installed gemmap finds them whatever the working directory
SHIPPED = Path(__file__).resolve().parent / "data"


def shipped(path: str | Path, kind: str) -> Path:
    """``path`` itself if it exists; else the shipped file of that name (``arch/gemmini.yaml``,
    ``gemmini.yaml`` or ``gemmini`` all find the packaged ``data/arch/gemmini.yaml``)."""
    p = Path(path)
    if p.exists():
        return p
    name = p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml"
    candidate = SHIPPED / kind / name
    return candidate if candidate.is_file() else p


# --- YAML ------------------------------------------------------------------------------------


class _SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last),
    nesting deeper than :data:`MAX_YAML_DEPTH` and integers longer than :data:`MAX_INT_DIGITS`
    digits; merge keys (``<<: *base``) work as in PyYAML, a key of the mapping itself overriding
    a merged one."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{shown(key)}' is given twice", key_node.start_mark
                )
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isdigit() for ch in str(node.value))
        if digits > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark
            )
        return super().construct_yaml_int(node)


_SpecLoader.add_constructor("tag:yaml.org,2002:int", _SpecLoader.construct_yaml_int)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` safely; any problem becomes a one-line GemmapError."""
    name = shown(str(path))
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_SpecLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GemmapError(f"{name}: malformed YAML{where}: {shown(problem)}") from None
    except (ValueError, RecursionError, OverflowError) as exc:  # belt and braces: never a traceback
        raise GemmapError(f"{name}: malformed YAML: {shown(str(exc))}") from None
    if not isinstance(data, dict):
        raise GemmapError(f"{name}: expected a mapping of keys to values at the top level")
    return data


def _field_names(cls: type, loc: tuple[Any, ...]) -> list[str]:
    """Names of the fields of the (nested) dataclass reached by ``loc`` below ``cls``."""
    fields = getattr(cls, "__pydantic_fields__", {})
    for part in loc:
        info = fields.get(part) if isinstance(part, str) else None
        if info is None:
            return list(fields)
        sub = info.annotation
        for arg in getattr(sub, "__args__", ()) or ():
            if hasattr(arg, "__pydantic_fields__"):
                sub = arg
        fields = getattr(sub, "__pydantic_fields__", {})
    return list(fields)


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """``ops.3.padding`` as ``ops[conv1].padding`` when the list entry has a name."""
    parts: list[str] = []
    for part in loc:
        entry = data[part] if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data) else None
        if isinstance(data, dict) and isinstance(part, str):
            entry = data.get(part)
        name = entry.get("name") if isinstance(entry, dict) and isinstance(part, int) else None
        parts.append(f"[{name}]" if isinstance(name, str) else f".{part}" if parts else str(part))
        data = entry
    return "".join(parts)


def format_validation_error(exc: pydantic.ValidationError, cls: type, source: str, data: Any = None) -> str:
    """One line for the first error of a pydantic validation: where, what, and a suggestion."""
    unknown = ("extra_forbidden", "unexpected_keyword_argument")
    errors = sorted(exc.errors(), key=lambda e: e["type"] not in unknown)
    err = errors[0]
    loc = tuple(err["loc"])
    where = shown(_where(loc, data)) or "(top level)"
    if err["type"] in unknown:
        key = str(loc[-1])
        hint = did_you_mean(key, _field_names(cls, loc[:-1]))
        return f"{source}: unknown key '{where}'{hint}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{where}'"
    value = err.get("input")
    got = f" (got {shown(value)})" if not isinstance(value, dict | list) else ""
    return f"{source}: '{where}': {err['msg'].lower()}{got}"


def build(cls: type[T], data: dict[str, Any], source: str) -> T:
    """Construct the validated spec ``cls`` from ``data`` or raise a one-line GemmapError."""
    source = shown(source)
    try:
        return cls(**data)
    except pydantic.ValidationError as exc:
        raise GemmapError(format_validation_error(exc, cls, source, data)) from None
    except TypeError as exc:  # e.g. a positional mismatch; pydantic reports most cases itself
        raise GemmapError(f"{source}: {shown(str(exc))}") from None
