"""Workload specs (plain dicts, as a workload YAML holds them) rendered as YAML text with a comment header.

Shared by the importers (:mod:`gemmap.interop.hf`, :mod:`gemmap.interop.onnx_graph`): scalar keys one a
line, an ``ops:`` list one flow mapping a line (as ``workloads/resnet50.yaml`` is written), through
``yaml.safe_dump`` so any name is quoted as YAML needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml


def _flow(value: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(value), default_flow_style=True, sort_keys=False, width=1_000_000).strip()


def workload_yaml(spec: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """``spec`` as workload YAML text: ``# header`` lines, then its keys in order (``ops`` one a line)."""
    lines = [f"# {line}" if line else "#" for line in header]
    for key, value in spec.items():
        if key == "ops":
            lines.append("ops:")
            lines.extend(f"  - {_flow(op)}" for op in value)
        else:
            lines.append(yaml.safe_dump({key: value}, sort_keys=False, width=1_000_000).strip())
    return "\n".join(lines) + "\n"
