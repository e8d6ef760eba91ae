"""Measured runs of real Gemmini (``../shared/validation/*.csv``, DOSA's FireSim data) as typed records.

One CSV data row is one :class:`MeasuredRun`: a layer (``prob.*``), a hardware configuration
(``arch.*``), a mapping (``mapping.mapping``, Timeloop's compact form) and the measured cycles
(``target.gemmini_cycle``; ``target.gemmini_auto_cycle`` for Gemmini's own tiler where present).
Rows keep their input order and are never dropped: a row with a bad value carries the reason in
``status`` and the other rows are read as usual. A missing required column is an error.

A row is a matmul when ``prob.R = prob.S = prob.Q = 1``. DOSA's own ``prob.shape`` column does not
tell them apart (it reads ``cnn-layer`` on every row of both files), so it is not used.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from gemmap.errors import GemmapError
from gemmap.specio import read_input

LAYER_DIMS = ("C", "K", "N", "P", "Q", "R", "S", "Hstride", "Wstride", "Hdilation", "Wdilation")
MEASURED = "target.gemmini_cycle"
AUTO_MEASURED = "target.gemmini_auto_cycle"
AUTO_TILING = "dse.auto_tiling"
MAPPING = "mapping.mapping"
# the arch columns the configuration label (and a predictor) cannot do without
ARCH_REQUIRED = ("meshX", "mem1_depth", "mem1_instances", "mem1_word-bits", "mem2_depth", "mem2_width")
REQUIRED_COLUMNS = (MAPPING, MEASURED, *(f"prob.{d}" for d in LAYER_DIMS), *(f"arch.{a}" for a in ARCH_REQUIRED))

Kind = Literal["matmul", "conv"]


@dataclasses.dataclass(frozen=True)
class MeasuredRun:
    """One measured (layer, hardware configuration, mapping) run; ``status`` is 'ok' or why the row is unusable."""

    row: int  # 0-based index of the data row (the header is not counted)
    kind: Kind
    layer: dict[str, int]  # prob.* without the prefix: C, K, N, P, Q, R, S, Hstride, Wstride, Hdilation, Wdilation
    mapping: str
    arch: dict[str, str]  # arch.* without the prefix, as written in the file
    measured: float | None  # target.gemmini_cycle
    auto_measured: float | None  # target.gemmini_auto_cycle (Gemmini's own tiler), if the file has it
    auto_tiling: str | None  # dse.auto_tiling: the tiles Gemmini's tiler chose, R_S_P_Q_C_K_N
    config_key: str  # short label of the hardware configuration, e.g. 'mesh16-sp127k-acc32k'
    status: str = "ok"

    def target(self, tiler: bool) -> float | None:
        """The measured cycles to compare with: Gemmini's own tiler (``tiler``) or the row's mapping."""
        return self.auto_measured if tiler else self.measured

    def run_key(self, tiler: bool) -> tuple:
        """What identifies the run measured here: its kind, layer, stated array (``arch.meshX``) and
        mapping, or with ``tiler`` Gemmini's own tiler in place of the mapping (its tiles follow from
        the layer and the software's header). The other ``arch.*`` columns of DOSA's files are only
        the memory sizes its search assumed, not the hardware that ran (docs/validation.md), so rows
        that differ only there measured the same run: their spread is the measurements' own
        (:func:`gemmap.validation.stats.repeat_stats`)."""
        return (self.kind, tuple(sorted(self.layer.items())), self.arch.get("meshX"), None if tiler else self.mapping)

    def dims_text(self) -> str:
        """The layer in a few characters: 'M512 K768 N3072' for a matmul, 'C3 K64 P112 Q112 R7 S7 /2' for a conv."""
        d = self.layer
        if not all(k in d for k in LAYER_DIMS):
            return "?"
        if self.kind == "matmul":
            batch = f" x{d['N']}" if d["N"] != 1 else ""
            return f"M{d['P']} K{d['C']} N{d['K']}{batch}"
        text = f"C{d['C']} K{d['K']} P{d['P']} Q{d['Q']} R{d['R']} S{d['S']}"
        if d["N"] != 1:
            text += f" N{d['N']}"
        if d["Hstride"] != 1 or d["Wstride"] != 1:
            text += f" /{d['Hstride']}" if d["Hstride"] == d["Wstride"] else f" /{d['Hstride']}x{d['Wstride']}"
        return text


@dataclasses.dataclass(frozen=True)
class PredictionTerms:
    """Where a predicted run's cycles go (:class:`gemmap.model.Cost`'s terms, the host's before the first
    tile added), and the mapping as gemmap ran it: what ``gemmap validate`` writes to ``breakdown.csv``."""

    compute: float  # array cycles of every tile (Cost.compute_cycles)
    transfer: float  # DMA cycles of every tile's loads and stores (Cost.local_transfer_cycles)
    exposed: float  # cycles the tile pipeline spends beyond compute (Cost.exposed_transfer_cycles)
    sequence: float  # a conv's two loops over its real tiles, a floor under compute + exposed (Cost.sequence_cycles)
    memory: float  # the memory's floor (Cost.dram_cycles)
    host: float  # host cycles in the timed window before the first tile (Gemmini's tiler's search)
    dram_bytes: int  # bytes from and to memory (Cost.dram_bytes)
    mapping: str  # the tiles and loop order as run (Mapping/ConvMapping.summary)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A predictor's answer for one run: cycles, or None with a one-line reason in ``status``; and,
    when the predictor knows them, the array the run executed on (``array``, e.g. ``"16x16"``),
    what bounds the predicted time (``bound``: ``compute``, ``memory`` or ``DRAM``, as
    :attr:`gemmap.model.Cost.bound`), by which ``gemmap validate`` groups its error statistics, and
    the cycles' terms (``terms``)."""

    predicted: float | None
    status: str = "ok"
    array: str | None = None
    bound: str | None = None
    terms: PredictionTerms | None = None


Predictor = Callable[[MeasuredRun], Prediction]


# --- reading ---------------------------------------------------------------------------------


def _positive_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value >= 1 else None


def _cycles(text: str | None) -> tuple[float | None, bool]:
    """(cycles, ok): an empty cell is (None, True); a non-number or a count ≤ 0 is (None, False)."""
    if text is None or not text.strip():
        return None, True
    try:
        value = float(text)
    except ValueError:
        return None, False
    return (value, True) if value > 0 and value != float("inf") else (None, False)


def _kib(nbytes: float) -> str:
    return f"{nbytes / 1024:.4g}k"


def config_key(arch: dict[str, str]) -> str | None:
    """'mesh{meshX}-sp{KiB}-acc{KiB}' from the arch columns (scratchpad = mem2, accumulator = mem1), None if unreadable."""
    nums = {a: _positive_int(arch.get(a, "")) for a in ARCH_REQUIRED}
    if any(v is None for v in nums.values()):
        return None
    spad = nums["mem2_depth"] * nums["mem2_width"] / 8  # type: ignore[operator]
    acc = nums["mem1_depth"] * nums["mem1_instances"] * nums["mem1_word-bits"] / 8  # type: ignore[operator]
    return f"mesh{nums['meshX']}-sp{_kib(spad)}-acc{_kib(acc)}"


def _parse_row(index: int, record: dict[str, str], has_auto: bool) -> MeasuredRun:
    problems = []
    layer: dict[str, int] = {}
    for d in LAYER_DIMS:
        value = _positive_int(record[f"prob.{d}"])
        if value is None:
            problems.append(f"prob.{d} '{record[f'prob.{d}']}' is not a positive whole number")
        else:
            layer[d] = value
    measured, ok = _cycles(record[MEASURED])
    if not ok:
        problems.append(f"{MEASURED} '{record[MEASURED]}' is not a positive number")
    auto, ok = _cycles(record.get(AUTO_MEASURED)) if has_auto else (None, True)
    if not ok:
        problems.append(f"{AUTO_MEASURED} '{record[AUTO_MEASURED]}' is not a positive number")
    mapping = " ".join(record[MAPPING].split())
    if not mapping:
        problems.append(f"{MAPPING} is empty")
    arch = {k.removeprefix("arch."): v.strip() for k, v in record.items() if k.startswith("arch.")}
    key = config_key(arch)
    if key is None:
        bad = [a for a in ARCH_REQUIRED if _positive_int(arch.get(a, "")) is None]
        problems.append(f"arch.{bad[0]} '{arch.get(bad[0], '')}' is not a positive whole number")
    matmul = layer.get("R") == layer.get("S") == layer.get("Q") == 1
    tiling = (record.get(AUTO_TILING) or "").strip() or None
    return MeasuredRun(
        row=index,
        kind="matmul" if matmul else "conv",
        layer=layer,
        mapping=mapping,
        arch=arch,
        measured=measured,
        auto_measured=auto,
        auto_tiling=tiling,
        config_key=key or "unknown",
        status="; ".join(problems) if problems else "ok",
    )


def parse_runs(text: str, source: str) -> tuple[list[MeasuredRun], list[str]]:
    """Runs from CSV ``text`` (``source`` names it in messages) and one line per unusable row."""
    reader = csv.reader(io.StringIO(text), strict=True)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise GemmapError(
                f"{source}: empty file (expected a CSV header with {MEASURED}, {MAPPING}, prob.*, arch.*)"
            )
        header = [h.strip() for h in header]
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise GemmapError(f"{source}: column '{dupes[0]}' appears more than once in the header")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise GemmapError(f"{source}: missing required column '{missing[0]}'{more}")
        has_auto = AUTO_MEASURED in header
        runs, problems = [], []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # a blank line is not a row
            index = len(runs)
            if len(fields) != len(header):
                record = dict(zip(header, fields + [""] * (len(header) - len(fields))))
                run = dataclasses.replace(
                    _parse_row(index, record, has_auto),
                    status=f"row has {len(fields)} fields, the header has {len(header)}",
                )
            else:
                run = _parse_row(index, dict(zip(header, fields)), has_auto)
            runs.append(run)
            if run.status != "ok":
                problems.append(f"row {index}: {run.status}")
    except csv.Error as exc:
        raise GemmapError(f"{source}: malformed CSV at line {reader.line_num}: {exc}") from None
    if not runs:
        raise GemmapError(f"{source}: no data rows after the header")
    return runs, problems


def read_runs(path: str | Path) -> tuple[list[MeasuredRun], list[str]]:
    """Read a validation CSV: every data row in input order, and one line per unusable row."""
    path = Path(path)
    data = read_input(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise GemmapError(f"{path}: cannot read file (not UTF-8 text)") from None
    if "\0" in text:
        raise GemmapError(f"{path}: cannot read file (binary data, not a CSV)")
    return parse_runs(text, str(path))


def has_auto_measurements(runs: Sequence[MeasuredRun]) -> bool:
    """Whether any run carries Gemmini's own-tiler measurement (the file has target.gemmini_auto_cycle)."""
    return any(r.auto_measured is not None for r in runs)


# --- applying a predictor ---------------------------------------------------------------------


def validate_runs(
    runs: Sequence[MeasuredRun],
    predictor: Predictor,
    *,
    tiler: bool = False,
    on_row: Callable[[str], None] | None = None,
) -> list[Prediction]:
    """One Prediction per run, in order; unusable rows and rows without the measurement are not predicted.

    ``tiler`` selects the measurement the prediction is compared with (Gemmini's own tiler); the
    predictor itself is bound to the arch and the tiler choice by the caller.
    """
    column = AUTO_MEASURED if tiler else MEASURED
    out = []
    for run in runs:
        if on_row:
            on_row(f"row {run.row}")
        if run.status != "ok":
            out.append(Prediction(None, run.status))
        elif run.target(tiler) is None:
            out.append(Prediction(None, f"no measured cycles in {column}"))
        else:
            out.append(_checked(predictor(run)))
    return out


def _checked(p: Prediction) -> Prediction:
    """The predictor's answer with a one-line status; a count that is not a positive number is no prediction."""
    status = " ".join(str(p.status).split()) or "no prediction"
    if status != "ok":
        return Prediction(None, status)
    if p.predicted is None:
        return Prediction(None, "no prediction")
    value = float(p.predicted)
    if not (value > 0 and value != float("inf")):
        return Prediction(None, f"predictor returned {p.predicted} cycles")
    return dataclasses.replace(p, predicted=value, status="ok")
