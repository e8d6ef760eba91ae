"""Safe YAML loading and validation of spec files into frozen pydantic dataclasses.

Every spec (architecture, workload) goes through :func:`load_yaml` (``yaml.safe_load``: no
``!!python/object`` tags) and :func:`build` (pydantic validation with unknown keys forbidden), so
that a typo or a bad size becomes one :class:`GemmapError` line naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from gemmap.errors import GemmapError, did_you_mean

T = TypeVar("T")


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key '{key}' is given twice", key_node.start_mark)
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


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


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; a one-line GemmapError if it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GemmapError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise GemmapError(f"{path}: cannot read file (not UTF-8 text)") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` safely; any problem becomes a one-line GemmapError."""
    path = Path(path)
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GemmapError(f"{path}: malformed YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise GemmapError(f"{path}: expected a mapping of keys to values at the top level")
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


def format_validation_error(exc: pydantic.ValidationError, cls: type, source: str) -> str:
    """One line for the first error of a pydantic validation: where, what, and a suggestion."""
    unknown = ("extra_forbidden", "unexpected_keyword_argument")
    errors = sorted(exc.errors(), key=lambda e: e["type"] not in unknown)
    err = errors[0]
    loc = tuple(err["loc"])
    where = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] in unknown:
        key = str(loc[-1])
        hint = did_you_mean(key, _field_names(cls, loc[:-1]))
        return f"{source}: unknown key '{where}'{hint}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{where}'"
    value = err.get("input")
    shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
    return f"{source}: '{where}': {err['msg'].lower()}{shown}"


def build(cls: type[T], data: dict[str, Any], source: str) -> T:
    """Construct the validated spec ``cls`` from ``data`` or raise a one-line GemmapError."""
    try:
        return cls(**data)
    except pydantic.ValidationError as exc:
        raise GemmapError(format_validation_error(exc, cls, source)) from None
    except TypeError as exc:  # e.g. a positional mismatch; pydantic reports most cases itself
        raise GemmapError(f"{source}: {exc}") from None
