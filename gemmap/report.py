"""Output: terminal tables, the JSON/CSV contract of DESIGN §8, and atomic file writes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from gemmap import __version__, model, warm
from gemmap.arch import Arch
from gemmap.conv import ConvMapping
from gemmap.errors import GemmapError, shown
from gemmap.mapper import LayerResult, WorkloadResult
from gemmap.specio import kind_of


def check_writable_dir(path: str | Path, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove a file can be written in it, before any work is done."""
    if not str(path).strip():
        raise GemmapError(f"{flag}: cannot write: give a folder name, not an empty string")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".gemmap-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise GemmapError(f"cannot write to {shown(str(path))}: {exc.strerror or exc}") from None
    return path


def refuse_special(path: Path, flag: str = "") -> None:
    """Refuse to replace an existing ``path`` that is not a regular file (a symlink, a FIFO, a
    device, a folder): an output never replaces them (``--json /dev/stdout`` as root would)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise GemmapError(f"{flag}{shown(str(path))}: cannot write: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise GemmapError(f"{flag}{shown(str(path))}: cannot write: it is a symbolic link; give a regular file")
    if stat.S_ISDIR(st.st_mode):
        raise GemmapError(f"{flag}{shown(str(path))}: cannot write: it is a folder; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise GemmapError(f"{flag}{shown(str(path))}: cannot write: it is {kind_of(st.st_mode)}; give a regular file")


def check_output_file(path: str | Path, flag: str) -> Path:
    """Before any work: ``path`` can be written as a file (not a folder, not under a regular file,
    not an existing symlink, FIFO or device, its nearest existing folder writable; nothing is
    created), else one line naming ``flag``."""
    text = str(path)
    if not text.strip():
        raise GemmapError(f"{flag}: cannot write: give a file name, not an empty string")
    if text == STDOUT and flag == "--json":
        return Path(text)  # JSON on standard output (the tables then go to standard error)
    path = Path(path)
    refuse_special(path, f"{flag} ")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise GemmapError(f"{flag} {shown(text)}: cannot write: {shown(str(parent))} is a file, not a folder")
            try:  # a probe in the nearest existing folder; missing folders are made when writing
                fd, probe = tempfile.mkstemp(dir=parent, prefix=".gemmap-probe.")
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise GemmapError(f"{flag} {shown(text)}: cannot write: {exc.strerror or exc}") from None
            break
    return path


def temp_name(path: Path) -> Path:
    """The temporary file :func:`atomic_write` writes ``path`` through: a fixed name next to it, so
    one left by a kill is replaced by the next write and found by :func:`remove_stale_temps`."""
    return path.with_name(f".{path.name}.tmp")


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files of :func:`atomic_write` (and of earlier versions: ``.NAME.XXXX.tmp``)
    that a killed run left in ``folder``."""
    for tmp in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()


def append_synced(fd: int, data: bytes, path: Path) -> None:
    """Append ``data`` to a journal opened as ``fd`` and fsync it (a short write is continued); a
    failure names ``path``. How ``sweep.csv`` and ``sweep_layers.csv`` record a finished point."""
    written = 0
    try:
        while written < len(data):  # one write in practice
            written += os.write(fd, data[written:])
        os.fsync(fd)
    except OSError as exc:
        raise GemmapError(f"cannot write {shown(str(path))}: {exc.strerror or exc}") from None


def whole_lines(path: Path, data: bytes, repair: bool) -> bytes:
    """``data`` (read from the journal ``path``) up to its last newline; with ``repair`` a torn last
    line left by a kill is also cut off the file itself."""
    cut = data.rfind(b"\n") + 1
    if cut < len(data) and repair:
        with open(path, "r+b") as fh:
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())
    return data[:cut]


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename, so a reader never sees half
    a file. The one way gemmap writes an output: an existing symlink, FIFO or device is refused,
    the temporary file is removed on every failure, and a failure names ``path``."""
    path = Path(path)
    refuse_special(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # left by a killed run
        umask = os.umask(0)
        os.umask(umask)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~umask)
    except OSError as exc:
        raise GemmapError(f"cannot write {shown(str(path))}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise GemmapError(f"cannot write {shown(str(path))}: {exc.strerror or exc}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_all(files: Sequence[tuple[Path, bytes]]) -> list[Path]:
    """:func:`atomic_write` each ``(path, data)``, all or none: if one fails, the ones written by
    this call are removed (never a PNG without its SVG) and the error names the file that failed."""
    written: list[Path] = []
    try:
        for path, data in files:
            atomic_write(path, data)
            written.append(Path(path))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def csv_text(rows: Sequence[dict[str, Any]], fields: Sequence[str] | None = None) -> str:
    fields = list(fields or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def eng(x: float, unit: str = "", digits: int = 3) -> str:
    """Engineering notation with ``digits`` significant figures: 1.23M, 45.6k (totals use 4)."""
    if x == 0:
        return f"0{unit}"
    for scale, suffix in (
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
    ):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g}{suffix}{unit}"
    return f"{x:.{digits}g}{unit}"


# --- map -------------------------------------------------------------------------------


def layer_record(layer: LayerResult, result: WorkloadResult) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": layer.name,
        "op": layer.op,
        "dims": layer.dims,
        "repeat": layer.repeat,
        "macs": layer.macs,
        "cycles": layer.cycles,
        "energy_pj": layer.energy_pj,
        "edp": layer.edp,
        "utilization": layer.utilization,
        "dram_bytes": layer.dram_bytes,
        "dram_bytes_lower_bound": layer.dram_bytes_lower_bound,
        "bound": layer.bound,
        "cycles_split": {"busy": layer.busy_cycles, "memory": layer.cycles - layer.busy_cycles},
        "dram_floor_cycles": dram_floor(layer, result.arch),
        "mapping": layer.mapping.to_dict(result.arch, layer.problem) if layer.mapping and layer.problem else {},
        "search": layer.search.info() if layer.search else {},
    }
    if layer.problem is not None and layer.problem.conv is not None:
        rec["gemm_dims"] = layer.problem.dims  # the im2col view, for comparison
    if layer.search:
        rec["energy_breakdown_pj"] = layer.search.cost.energy_breakdown
        rec["dram_bytes_by_tensor"] = layer.search.cost.dram_bytes_by_tensor
    if layer.note:
        rec["note"] = layer.note
    return rec


def map_json(result: WorkloadResult) -> dict[str, Any]:
    return {
        "arch": result.arch.summary(),
        "workload": {"name": result.workload_name},
        "objective": result.objective,
        "fusion": result.fusion,
        "layers": [layer_record(x, result) for x in result.layers],
        "total": total_record(result),
    }


def total_record(result: WorkloadResult) -> dict[str, float]:
    """Whole-model totals: every layer × its ``repeat`` (cycles, energy, EDP, DRAM bytes, seconds)."""
    t = result.total
    return {
        **t.to_dict(),
        "dram_bytes": sum(x.dram_bytes * x.repeat for x in result.layers),
        "seconds": t.cycles / (result.arch.frequency_mhz * 1e6),
    }


#: M, K, N are a conv's im2col view; ``conv`` its named dims (B, K, C, P, Q, R, S, stride, padding, dilation)
MAP_CSV_FIELDS = (
    "name", "op", "M", "K", "N", "conv", "rows", "row_len", "repeat", "macs", "cycles", "energy_pj", "edp",
    "utilization", "bound", "dram_bytes", "dram_bytes_lower_bound", "mapping", "method", "evaluated", "seconds", "proven_optimal",
)  # fmt: skip


def map_csv(result: WorkloadResult) -> str:
    rows = []
    for x in result.layers:
        row = {k: v for k, v in layer_record(x, result).items() if not isinstance(v, dict)}
        if x.problem is not None and x.problem.conv is not None:
            row.update(x.problem.dims)
            row["conv"] = " ".join(f"{k}={v}" for k, v in x.dims.items())
        else:
            row.update(x.dims)
        row["mapping"] = x.mapping.summary(result.arch) if x.mapping else x.note
        if x.search:
            row.update(x.search.info())
        rows.append(row)
    total = total_record(result)
    rows.append(
        {
            "name": "total",
            "op": "whole model (layers x repeat)",
            **{k: total[k] for k in ("cycles", "energy_pj", "edp", "dram_bytes")},
        }
    )
    return csv_text(rows, MAP_CSV_FIELDS)


def _dims_text(layer: LayerResult) -> str:
    """``MxKxN`` for a matmul (``bmm`` marked), ``kind rows×len`` for a non-linear op; a conv's 7
    dims by name with stride and padding (dilation if not 1)."""
    d = layer.dims
    if layer.problem is None:
        return f"{layer.op} {d['rows']}x{d['row_len']}"
    if layer.problem.conv is None:
        return ("bmm " if layer.op == "bmm" else "") + "x".join(str(v) for v in d.values())
    text = " ".join(f"{k}{d[k]}" for k in ("B", "K", "C", "P", "Q", "R", "S") if k != "B" or d[k] != 1)
    text += (f" /{d['stride']}" if d["stride"] != 1 else "") + (f" p{d['padding']}" if d["padding"] else "")
    return text + (f" d{d['dilation']}" if d["dilation"] != 1 else "")


def dram_floor(layer: LayerResult, arch: Arch) -> float:
    """Cycles the layer's DRAM bytes take at the DRAM bandwidth, with what misses a memory-side cache at
    its miss rate: the searched cost's own memory floor (``Cost.dram_cycles``: its first fills and, for a
    conv, its reloads), else the bytes at the bandwidth plus the first fills' misses. A floor under its time."""
    if layer.search is not None:
        return float(layer.search.cost.dram_cycles)
    extra = 0.0 if layer.problem is None else warm.cache_miss_cycles(arch, layer.problem)
    return float(model.memory_cycles(arch, layer.dram_bytes, extra))


def _dram_share(layer: LayerResult, arch: Arch) -> str:
    """:func:`dram_floor` as a share of the layer's time."""
    return f"{dram_floor(layer, arch) / layer.cycles:.0%}" if layer.cycles else "-"


def compact_table(title: str, columns: Sequence[str], left: Sequence[str]) -> Table:
    """A table in the compact style of every gemmap table (no vertical rules, one space between
    columns; headers never truncated): ``left`` columns left-justified, the others right."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right", min_width=len(col) + 1)
    return table


def map_table(result: WorkloadResult, title: str | None = None) -> Table:
    search = next((x.search.method for x in result.layers if x.search), "")
    table = compact_table(
        title
        or f"{result.workload_name} on {result.arch.name} (search {search}, objective {result.objective}, "
        f"fusion {result.fusion})",
        (
            "layer",
            "dims",
            "x",
            "cycles",
            "energy",
            "EDP",
            "util",
            "bound",
            "dram%",
            "DRAM",
            "vs LB",
            "mapping",
            "search",
        ),
        left=("layer", "dims", "bound", "mapping", "search"),
    )
    for x in result.layers:
        vs_lb = f"{x.dram_bytes / x.dram_bytes_lower_bound:.2f}x" if x.dram_bytes_lower_bound else "-"
        effort = ""
        if x.search:
            s = x.search
            effort = f"{eng(s.evaluated)} {s.seconds:.2f}s" + (" ✓" if s.proven_optimal else "")
        table.add_row(
            x.name, _dims_text(x), str(x.repeat), eng(x.cycles), eng(x.energy_pj * 1e-12, "J"),
            eng(x.edp * 1e-12, "J·cyc"), f"{x.utilization:.0%}" if x.utilization is not None else "-",
            x.bound, _dram_share(x, result.arch), eng(x.dram_bytes, "B"), vs_lb,
            x.mapping.summary(result.arch) if x.mapping else x.note, effort,
        )  # fmt: skip
    t = result.total
    seconds = t.cycles / (result.arch.frequency_mhz * 1e6)
    table.caption = (
        "x instances · bound: compute | memory (exposed transfers) | DRAM | CPU | unit · dram%: DRAM floor / time"
        " · vs LB: DRAM bytes / lower bound · search: mappings, seconds, ✓ proven optimal"
    )
    if result.arch.l2 is not None and result.arch.l2.warm_start:  # the bounds are for a cold start
        table.caption += " · l2.warm_start: each layer finds its operands in the L2 (DRAM bytes can be below LB)"
    table.add_section()
    table.add_row("total", "", "", eng(t.cycles, digits=4), eng(t.energy_pj * 1e-12, "J", 4),
                  eng(t.edp * 1e-12, "J·cyc", 4), "", "", "", eng(sum(x.dram_bytes * x.repeat for x in result.layers), "B", 4),
                  "", f"{seconds * 1e3:.4g} ms at {result.arch.frequency_mhz:g} MHz", "")  # fmt: skip
    return table


#: the map table's columns that go first when it is wider than the terminal, least useful first
MAP_DROPPABLE = ("EDP", "search", "vs LB", "util")


def table_width() -> int:
    """Columns to fit tables in: the terminal's (or ``COLUMNS``); 100 when output is not a terminal."""
    console = Console()
    return console.size.width if console.is_terminal or "COLUMNS" in os.environ else 100


#: a text column narrower than this is folded onto more lines rather than squeezed further
FOLD_WIDTH = 24


def fit_table(table: Table, width: int, droppable: Sequence[str]) -> Table:
    """Drop the columns named in ``droppable``, in that order, until ``table`` fits ``width``
    columns with its text columns (``mapping``, ``note``) folded to at least :data:`FOLD_WIDTH`;
    the caption says which went (the JSON and CSV outputs keep everything)."""
    measure = Console(width=10_000)
    folding = [c for c in table.columns if c.header in ("mapping", "note")]
    for c in folding:
        c.max_width, c.overflow = FOLD_WIDTH, "fold"
    dropped = []
    for name in droppable:
        if measure.measure(table).maximum <= width:
            break
        col = next((c for c in table.columns if c.header == name), None)
        if col is not None:
            table.columns.remove(col)
            dropped.append(name)
    for c in folding:
        c.max_width = None
    if dropped:
        note = f"[{', '.join(dropped)} left out to fit {width} columns: widen the terminal or see --json/--csv]"
        table.caption = f"{table.caption} {note}" if table.caption else note
    return table


def print_table(table: Table, console: Console | None = None, droppable: Sequence[str] = ()) -> None:
    """Print ``table`` within :func:`table_width` columns, dropping ``droppable`` columns if needed."""
    width = table_width()
    (console or Console(width=width)).print(fit_table(table, width, droppable))


def loop_nests(result: WorkloadResult, names: Iterable[str] | None = None) -> str:
    wanted = set(names) if names else None
    out = []
    dim = result.arch.dim_cols
    for x in result.layers:
        if isinstance(x.mapping, ConvMapping) and x.problem and (wanted is None or x.name in wanted):
            out.append(f"== {x.name} ({x.mapping.summary(result.arch)})\n{x.mapping.loop_nest(result.arch, x.problem)}")
            continue
        if x.mapping and x.problem and (wanted is None or x.name in wanted):
            Tm, Tk, Tn = x.mapping.local
            blocks = f"in DIM blocks, as tiled_matmul_auto counts them: tile_I={-(-Tm // dim)} tile_J={-(-Tn // dim)} tile_K={-(-Tk // dim)}"
            out.append(
                f"== {x.name} ({x.mapping.summary(result.arch)}; {blocks})\n"
                f"{x.mapping.loop_nest(result.arch, x.problem)}"
            )
    return "\n\n".join(out)


def _finite(data: Any) -> bool:
    """No NaN or infinity anywhere in ``data`` (which JSON cannot hold)."""
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(_finite(v) for v in data.values())
    if isinstance(data, list | tuple):
        return all(_finite(v) for v in data)
    return True


#: the ``--json`` value that writes the record to standard output instead of a file
STDOUT = "-"


def write_json(path: str | Path, data: Any) -> None:
    """An output record as strict JSON (never NaN or Infinity: the input bounds make them impossible,
    and an internal error here is a bug, not a file nobody can parse); a dict record starts with
    ``tool`` (gemmap and its version)."""
    assert _finite(data), f"non-finite number in the JSON for {path}"
    if isinstance(data, dict):
        data = {"tool": {"name": "gemmap", "version": __version__}, **data}
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    if str(path) == STDOUT:
        sys.__stdout__.write(text)  # the real stdout: the CLI sends everything else to stderr then
        sys.__stdout__.flush()
        return
    atomic_write(path, text)
