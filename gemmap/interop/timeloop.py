"""Timeloop mappings -- the compact one-line form and the YAML ``mapping:`` list -- as a neutral loop nest.

Compact form, as Timeloop's mapper prints it (``Nest::PrintCompact``, src/mapping/nest.cpp of
NVlabs/timeloop) and as DOSA stores it (ucb-bar/dosa, ``mapping.mapping`` column)::

    L3[WIO] K8 Q28 - L2[WI] N1 K4X - L1[O] K2 S7 R7 Q4 P7 C3X - L0[W] P16

Levels are separated by `` - ``, outermost first. ``Ln[...]`` names a storage level and the dataspaces
it keeps (first letters of Weights, Inputs, Outputs). Then its loops, outer to inner: a dim letter, a
bound, and a trailing ``X`` for a spatial loop. Timeloop writes a trivial ``N1`` (its last CNN dim)
where a level has no non-trivial temporal loop (src/mapping/parser.cpp). Timeloop can also print
``K4;3`` (a residual bound) and ``K4Y`` (spatial along Y); neither occurs in DOSA's Gemmini data and
both are refused here.

YAML form (Timeloop's mapping input): entries with ``target`` (a storage level name), ``type``
(``temporal``, ``spatial``, or ``datatype``/``bypass``), ``factors`` (``"C=1 K=2 ..."``; Timeloop also
accepts and writes ``"C1 K2"``), ``permutation`` (dims listed INNERMOST FIRST: Timeloop's docs call
it little-endian, and parser.cpp puts ``permutation[0]`` at loop index 0, the innermost), ``split``
(spatial only: the first ``split`` dims of the permutation go along X, the rest along Y) and
``keep``/``bypass`` (dataspace names; one left unspecified is kept, as in Timeloop).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gemmap.errors import GemmapError, did_you_mean
from gemmap.specio import load_yaml

DIMS: tuple[str, ...] = ("C", "K", "N", "P", "Q", "R", "S")
"""Timeloop's CNN-layer dims: C input channels, K output channels, N batch, P/Q output rows/columns,
R/S filter rows/columns (a matmul C[M,N] = A[M,K]·B[K,N] is P = M, C = K, K = N)."""

TIMELOOP_DIM_ORDER: tuple[str, ...] = ("R", "S", "P", "Q", "C", "K", "N")
"""Timeloop's own order of the CNN-layer dims (its dimension ids), used where it pads permutations."""

DATASPACES: tuple[str, ...] = ("W", "I", "O")
"""Dataspace letters in Timeloop's order: Weights, Inputs, Outputs."""

DEFAULT_LEVEL_NAMES: Mapping[str, str] = MappingProxyType(
    {"DRAM": "L3", "Scratchpad": "L2", "Accumulator": "L1", "Registers": "L0", "PE": "L0"}
)
"""YAML target -> level, after DOSA's Gemmini architecture (dataset/hw/gemmini/arch/arch.yaml and
``MEM_LVLS`` in gemmini_config.py: DRAM WIO, Scratchpad WI, Accumulator O, Registers W)."""

_PLACEHOLDER = "N"
_DATASPACE_NAMES = {"weights": "W", "inputs": "I", "outputs": "O", "w": "W", "i": "I", "o": "O"}
_HEADER_RE = re.compile(r"(L\d+)\[([A-Za-z]*)\]")
_LOOP_RE = re.compile(r"([A-Za-z]+?)(\d+)(X?)")
_FACTORS_RE = re.compile(r"(?:\s*[A-Za-z]+\s*=?\s*\d+(?:,\d+)?)*\s*")
_FACTOR_RE = re.compile(r"([A-Za-z]+)\s*=?\s*(\d+)(,\d+)?")
_YAML_KEYS = ("target", "type", "factors", "permutation", "split", "keep", "bypass")
_TYPES = {"temporal": "temporal", "spatial": "spatial", "datatype": "datatype", "bypass": "datatype"}


@dataclass(frozen=True)
class Loop:
    """One loop: ``for dim in range(bound)``, in time or (``spatial``) across the array."""

    dim: str
    bound: int
    spatial: bool = False

    def to_compact(self) -> str:
        """The loop as Timeloop prints it: dim, bound, and ``X`` if spatial."""
        return f"{self.dim}{self.bound}{'X' if self.spatial else ''}"


@dataclass(frozen=True)
class Level:
    """A storage level: its name, the dataspaces it keeps, and its loops outer to inner."""

    name: str
    keeps: frozenset[str]
    loops: tuple[Loop, ...]

    def to_compact(self) -> str:
        """``name[keeps] loop loop ...`` with the kept dataspaces in W, I, O order."""
        keeps = "".join(d for d in DATASPACES if d in self.keeps)
        return " ".join([f"{self.name}[{keeps}]", *(loop.to_compact() for loop in self.loops)])


@dataclass(frozen=True)
class LoopNest:
    """A mapping as a loop nest: storage levels outermost first."""

    levels: tuple[Level, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Level names, outermost first."""
        return tuple(level.name for level in self.levels)

    def level(self, name: str) -> Level:
        """The level called ``name``; a GemmapError if there is none."""
        for level in self.levels:
            if level.name == name:
                return level
        raise GemmapError(f"mapping: unknown level '{name}' (levels are {', '.join(self.names)})")

    def factor(self, dim: str, level: str | None = None) -> int:
        """F(dim, level) = product of the bounds of dim's loops (temporal and spatial) at ``level``;
        with ``level=None`` the product over all levels, i.e. the extent of dim the nest covers."""
        _check_dim(dim)
        levels = self.levels if level is None else (self.level(level),)
        return math.prod(loop.bound for lvl in levels for loop in lvl.loops if loop.dim == dim)

    def tile(self, dim: str, level: str) -> int:
        """T(dim, level) = product of F(dim, l) over ``level`` and every level inside it: the extent of
        dim held in one instance of ``level`` (Timeloop's tile at that level)."""
        start = self.names.index(self.level(level).name)
        return math.prod(self.factor(dim, lvl.name) for lvl in self.levels[start:])

    def temporal_order(self, level: str) -> tuple[str, ...]:
        """Dims of the non-trivial (bound > 1) temporal loops at ``level``, outer to inner."""
        return tuple(loop.dim for loop in self.level(level).loops if not loop.spatial and loop.bound > 1)

    def spatial(self, level: str) -> dict[str, int]:
        """Spatial fan-out at ``level``: dim -> product of its spatial bounds (only dims that have one)."""
        out: dict[str, int] = {}
        for loop in self.level(level).loops:
            if loop.spatial:
                out[loop.dim] = out.get(loop.dim, 1) * loop.bound
        return out

    def trimmed(self) -> LoopNest:
        """The same nest without bound-1 loops (Timeloop's ``N1`` placeholders included)."""
        return LoopNest(tuple(_trim(level) for level in self.levels))

    def to_compact(self) -> str:
        """The nest in Timeloop's compact form; ``parse_compact`` reads it back unchanged."""
        return " - ".join(level.to_compact() for level in self.levels)


def _trim(level: Level) -> Level:
    """``level`` without its bound-1 loops."""
    return Level(level.name, level.keeps, tuple(loop for loop in level.loops if loop.bound > 1))


def _check_dim(dim: str, where: str = "mapping") -> str:
    """``dim`` if it is a Timeloop CNN dim, else a GemmapError naming the dims."""
    if dim not in DIMS:
        raise GemmapError(f"{where}: unknown dim '{dim}' (dims are {', '.join(DIMS)})")
    return dim


# --- compact form -------------------------------------------------------------------------------


def parse_compact(text: str) -> LoopNest:
    """Parse Timeloop's compact mapping string (levels outermost first, loops outer to inner)."""
    groups = _split_levels(text)
    levels = tuple(_parse_compact_level(tokens, i) for i, tokens in enumerate(groups))
    _check_unique_names(level.name for level in levels)
    return LoopNest(levels)


def _split_levels(text: str) -> list[list[str]]:
    """Whitespace tokens of ``text`` grouped by the ``-`` separators; empty groups are an error."""
    tokens = text.split()
    if not tokens:
        raise GemmapError("mapping: empty mapping string")
    groups: list[list[str]] = [[]]
    for token in tokens:
        if token == "-":
            groups.append([])
        else:
            groups[-1].append(token)
    for i, group in enumerate(groups):
        if not group:
            raise GemmapError(f"mapping: level #{i + 1} is empty (a stray or doubled ' - ' separator)")
    return groups


def _parse_compact_level(tokens: list[str], position: int) -> Level:
    """One ``Ln[keeps] loop ...`` group; ``position`` (0-based) names it if its header is bad."""
    header = _HEADER_RE.fullmatch(tokens[0])
    if header is None:
        raise GemmapError(
            f"mapping: level #{position + 1}: bad level header '{tokens[0]}' (expected a name and kept "
            "dataspaces, e.g. 'L1[O]')"
        )
    name, letters = header.groups()
    keeps = _parse_keeps(letters, name, tokens[0])
    return Level(name, keeps, tuple(_parse_compact_loop(token, name) for token in tokens[1:]))


def _parse_keeps(letters: str, level: str, header: str) -> frozenset[str]:
    """The dataspace letters of a level header, each one of W, I, O and given once."""
    for letter in letters:
        if letter not in DATASPACES:
            raise GemmapError(
                f"mapping: level {level}: unknown dataspace '{letter}' in '{header}' "
                f"(dataspaces are {', '.join(DATASPACES)})"
            )
    if len(set(letters)) != len(letters):
        raise GemmapError(f"mapping: level {level}: a dataspace is repeated in '{header}'")
    return frozenset(letters)


def _parse_compact_loop(token: str, level: str) -> Loop:
    """One loop token such as ``K4`` or ``C16X``."""
    match = _LOOP_RE.fullmatch(token)
    if match is None:
        raise GemmapError(f"mapping: level {level}: bad loop '{token}' ({_loop_hint(token)})")
    dim, digits, x = match.groups()
    if dim not in DIMS:
        raise GemmapError(f"mapping: level {level}: unknown dim '{dim}' in loop '{token}' (dims are {', '.join(DIMS)})")
    if digits.startswith("0"):
        raise GemmapError(f"mapping: level {level}: bad loop '{token}' (a bound is a positive integer, no leading 0)")
    return Loop(dim, int(digits), bool(x))


def _loop_hint(token: str) -> str:
    """Why ``token`` is not a loop, for the error message."""
    if ";" in token:
        return "residual bounds such as 'K4;3' are not supported"
    if token.endswith("Y"):
        return "spatial loops along Y are not supported, only X"
    return "expected a dim letter, a positive bound and an optional X, e.g. 'K4' or 'C16X'"


def _check_unique_names(names: Iterable[str]) -> None:
    """A GemmapError if a level name appears twice."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise GemmapError(f"mapping: level {name} appears twice")
        seen.add(name)


# --- YAML form ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Directive:
    """One YAML entry, resolved: its level, kind, loops (outer to inner) and bypassed dataspaces."""

    level: str
    kind: str  # temporal | spatial | datatype
    loops: tuple[Loop, ...] = ()
    bypass: frozenset[str] = frozenset()


def parse_yaml(
    source: str | Path | Mapping[str, Any], level_names: Mapping[str, str] = DEFAULT_LEVEL_NAMES
) -> LoopNest:
    """Parse a Timeloop mapping YAML (a file, or its loaded document) into a loop nest.

    ``level_names`` maps YAML targets (case-insensitively) to level names; its distinct values,
    outermost first, are the nest's levels, so a level the YAML leaves out is still present, as in
    Timeloop. A level's temporal loops (bound > 1) come before its spatial ones; one without a
    non-trivial temporal loop gets Timeloop's ``N1`` placeholder, so the result equals the parse of
    the compact string Timeloop prints for the same mapping.
    """
    where, doc = _read_doc(source)
    entries = doc.get("mapping")
    if not isinstance(entries, list):
        raise GemmapError(f"{where}: expected a list of directives under 'mapping:'")
    lookup = _level_lookup(level_names)
    directives = [_parse_directive(entry, f"{where}: entry {i + 1}", lookup) for i, entry in enumerate(entries)]
    _check_unique_directives(directives, where)
    return LoopNest(tuple(_build_level(name, directives) for name in dict.fromkeys(level_names.values())))


def _read_doc(source: str | Path | Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """The error prefix and the YAML document of ``source``."""
    if isinstance(source, Mapping):
        return "mapping", source
    return f"{source}: mapping", load_yaml(source)


def _level_lookup(level_names: Mapping[str, str]) -> dict[str, str]:
    """Lower-cased target name -> level, also accepting each level's own name."""
    lookup = {level.lower(): level for level in level_names.values()}
    lookup.update({target.lower(): level for target, level in level_names.items()})
    return lookup


def _parse_directive(entry: Any, where: str, lookup: Mapping[str, str]) -> _Directive:
    """One ``mapping:`` entry; ``where`` names it in errors."""
    if not isinstance(entry, Mapping):
        raise GemmapError(f"{where}: expected a mapping with 'target' and 'type'")
    for key in entry:
        if key not in _YAML_KEYS:
            raise GemmapError(f"{where}: unknown key '{key}'{did_you_mean(str(key), _YAML_KEYS)}")
    target = entry.get("target")
    if not isinstance(target, str) or target.lower() not in lookup:
        known = ", ".join(dict.fromkeys(lookup.values()))
        raise GemmapError(f"{where}: unknown level '{target}' (levels are {known}, or a name mapped to one)")
    level = lookup[target.lower()]
    here = f"{where} (target '{target}' = level {level})"
    kind = _TYPES.get(str(entry.get("type")))
    if kind is None:
        raise GemmapError(f"{here}: bad type '{entry.get('type')}' (types are temporal, spatial, datatype, bypass)")
    _check_keys_fit_type(entry, kind, here)
    if kind == "datatype":
        return _Directive(level, kind, bypass=_parse_bypass(entry, here))
    factors = _parse_factors(entry.get("factors", ""), here)
    order = _parse_permutation(entry.get("permutation", ""), here)
    if kind == "spatial":
        _check_split(entry.get("split"), order, factors, here)
    loops = tuple(Loop(d, factors[d], kind == "spatial") for d in reversed(order) if factors.get(d, 1) > 1)
    return _Directive(level, kind, loops=loops)


def _check_keys_fit_type(entry: Mapping[str, Any], kind: str, where: str) -> None:
    """Refuse keys that the directive's type does not use (e.g. ``keep`` on a temporal directive)."""
    used = {"temporal": ("factors", "permutation"), "spatial": ("factors", "permutation", "split")}
    allowed = ("target", "type", *used.get(kind, ("keep", "bypass")))
    for key in entry:
        if key not in allowed:
            raise GemmapError(f"{where}: key '{key}' does not apply to a {entry.get('type')} directive")


def _parse_factors(text: Any, where: str) -> dict[str, int]:
    """``"C=1 K=2 ..."`` (or ``"C1 K2"``, as Timeloop writes) -> {dim: factor}; a missing dim is 1."""
    if not isinstance(text, str):
        raise GemmapError(f"{where}: factors must be a string such as 'C=1 K=2' (got {text!r})")
    body = text.split("#", 1)[0]
    if _FACTORS_RE.fullmatch(body) is None:
        raise GemmapError(f"{where}: bad factors '{text.strip()}' (expected e.g. 'C=1 K=2 P=7')")
    factors: dict[str, int] = {}
    for dim, digits, residual in _FACTOR_RE.findall(body):
        _check_dim(dim, f"{where}: factors")
        if residual:
            raise GemmapError(f"{where}: factor '{dim}={digits}{residual}' has a residual, which is not supported")
        if int(digits) < 1:
            raise GemmapError(f"{where}: factor '{dim}={digits}' must be positive")
        if dim in factors:
            raise GemmapError(f"{where}: factor of {dim} given twice")
        factors[dim] = int(digits)
    return factors


def _parse_permutation(text: Any, where: str) -> tuple[str, ...]:
    """A permutation (innermost first) padded, as Timeloop pads it, with the dims it leaves out in
    Timeloop's dim order (so they land outermost)."""
    if not isinstance(text, str):
        raise GemmapError(f"{where}: permutation must be a string such as 'KCRS' (got {text!r})")
    dims = "".join(text.split("#", 1)[0].split())
    for dim in dims:
        _check_dim(dim, f"{where}: permutation '{dims}'")
    if len(set(dims)) != len(dims):
        raise GemmapError(f"{where}: permutation '{dims}' repeats a dim")
    return tuple(dims) + tuple(d for d in TIMELOOP_DIM_ORDER if d not in dims)


def _check_split(split: Any, order: tuple[str, ...], factors: Mapping[str, int], where: str) -> None:
    """Refuse a ``split`` that puts a non-trivial spatial loop along Y (permutation index >= split)."""
    if split is None:
        return
    if not isinstance(split, int) or isinstance(split, bool) or split < 0:
        raise GemmapError(f"{where}: split must be a non-negative integer (got {split!r})")
    along_y = [d for d in order[split:] if factors.get(d, 1) > 1]
    if along_y:
        raise GemmapError(f"{where}: split {split} puts {', '.join(along_y)} along Y; only X is supported")


def _parse_bypass(entry: Mapping[str, Any], where: str) -> frozenset[str]:
    """The dataspaces a datatype directive bypasses; ``keep`` only checks (kept is the default)."""
    keep = _dataspaces(entry.get("keep", []), "keep", where)
    bypass = _dataspaces(entry.get("bypass", []), "bypass", where)
    both = keep & bypass
    if both:
        raise GemmapError(f"{where}: {', '.join(sorted(both))} both kept and bypassed")
    return bypass


def _dataspaces(names: Any, key: str, where: str) -> frozenset[str]:
    """A ``keep``/``bypass`` list of dataspace names (Weights, Inputs, Outputs or W, I, O) -> letters."""
    if names is None:
        return frozenset()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise GemmapError(f"{where}: '{key}' must be a list of dataspace names")
    for name in names:
        if name.lower() not in _DATASPACE_NAMES:
            raise GemmapError(
                f"{where}: unknown dataspace '{name}' in '{key}' (dataspaces are Weights, Inputs, Outputs)"
            )
    return frozenset(_DATASPACE_NAMES[n.lower()] for n in names)


def _check_unique_directives(directives: list[_Directive], where: str) -> None:
    """A GemmapError if one level has two directives of the same kind."""
    seen: set[tuple[str, str]] = set()
    for d in directives:
        if (d.level, d.kind) in seen:
            raise GemmapError(f"{where}: level {d.level} has two {d.kind} directives")
        seen.add((d.level, d.kind))


def _build_level(name: str, directives: list[_Directive]) -> Level:
    """Level ``name``: temporal loops (or the ``N1`` placeholder), then spatial loops; keeps all
    dataspaces but the bypassed ones."""
    mine = {d.kind: d for d in directives if d.level == name}
    temporal = mine["temporal"].loops if "temporal" in mine else ()
    spatial = mine["spatial"].loops if "spatial" in mine else ()
    bypass = mine["datatype"].bypass if "datatype" in mine else frozenset()
    keeps = frozenset(DATASPACES) - bypass
    return Level(name, keeps, (temporal or (Loop(_PLACEHOLDER, 1),)) + spatial)


# --- either form, and checks --------------------------------------------------------------------


def load_mapping(source: str | Path) -> LoopNest:
    """A mapping from a ``.yaml``/``.yml`` path (Timeloop YAML) or else a compact mapping string."""
    if isinstance(source, Path) or source.strip().lower().endswith((".yaml", ".yml")):
        return parse_yaml(Path(str(source).strip()))
    return parse_compact(source)


def check_covers(nest: LoopNest, dims: Mapping[str, int]) -> None:
    """Check that every dim's factors multiply to at least its size: F(d) = prod over all levels >= size.

    Timeloop requires F(d) == size exactly (parser.cpp: "product of all factors ... is not equal to
    the dimension size"); a larger product is accepted here as an imperfect factorization whose last
    tile is padded, as Gemmini's tiler pads partial tiles.
    """
    for dim, size in dims.items():
        product = nest.factor(_check_dim(dim), None)
        if product < size:
            raise GemmapError(f"mapping: dim {dim}: factors multiply to {product}, less than its size {size}")
