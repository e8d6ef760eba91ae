"""docs/formats.md lists exactly the keys gemmap reads and writes (the documented contract)."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from gemmap import cdf, sweep
from gemmap.arch import Arch
from gemmap.cli import main
from gemmap.families import DecoderSpec, VitSpec
from gemmap.report import MAP_CSV_FIELDS
from gemmap.sweep_layers import LAYER_FIELDS
from gemmap.validation.report import BREAKDOWN_FIELDS, PREDICTIONS_FIELDS
from gemmap.workload import BertSpec, OpSpec

from .conftest import ROOT

DOC = ROOT / "docs" / "formats.md"
DATA16 = ROOT.parent / "shared" / "validation" / "gemmini-firesim-16x16.csv"


def documented() -> dict[str, set[str]]:
    """``<!-- keys: NAME -->`` → the backticked keys in the first column of the table after it.
    In a cell, later keys without a dot (or starting with one) share the first key's parent."""
    out: dict[str, set[str]] = {}
    for block in re.split(r"<!-- keys: ", DOC.read_text(encoding="utf-8"))[1:]:
        name, rest = block.split(" -->", 1)
        keys: set[str] = set()
        for line in rest.strip().splitlines()[2:]:
            if not line.startswith("|"):
                break
            tokens = re.findall(r"`([^`]+)`", line.split("|")[1])
            parent = tokens[0].rpartition(".")[0]
            for i, t in enumerate(tokens):
                if i and parent and (t.startswith(".") or "." not in t):
                    t = f"{parent}.{t.lstrip('.')}"
                keys.add(t)
        out[name] = keys
    return out


def fields(cls: type, prefix: str = "") -> set[str]:
    """Every YAML key of a spec dataclass, nested sections as ``section.key``."""
    hints = typing.get_type_hints(cls)
    keys: set[str] = set()
    for f in dataclasses.fields(cls):
        sub = [a for a in (typing.get_args(hints[f.name]) or (hints[f.name],)) if dataclasses.is_dataclass(a)]
        keys |= fields(sub[0], f"{prefix}{f.name}.") if sub else {prefix + f.name}
    return keys


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, dict]:
    d = tmp_path_factory.mktemp("formats")
    runs = {
        "map": ["map", "workloads/resnet50.yaml", "--search", "heuristic"],
        "map_bert": ["map", "workloads/bert-tiny.yaml", "--search", "heuristic", "--fusion", "auto",
                     "--arch", "arch/gemmini-transformer.yaml"],
        "schedule": ["schedule", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini-transformer.yaml",
                     "--search", "heuristic"],
        "evaluate": ["evaluate", "--arch", "arch/gemmini-firesim.yaml", "--layer", "matmul M=128 K=768 N=768",
                     "--mapping", "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32"],
        "pipeline": ["pipeline", "workloads/bert-tiny.yaml", "--arch", "arch/gemmini.yaml", "--arch",
                     "arch/gemmini-transformer.yaml", "--search", "heuristic"],
    }  # fmt: skip
    out = {}
    for name, args in runs.items():
        path = d / f"{name}.json"
        assert main([*args, "--json", str(path)]) == 0, name
        out[name] = json.loads(path.read_text())
    if DATA16.exists():
        assert main(["validate", str(DATA16), "--out", str(d / "v")]) == 0
        out["validate"] = json.loads((d / "v" / "summary.json").read_text())
    return out


def test_yaml_formats_are_documented():
    doc = documented()
    assert doc["arch"] == fields(Arch)
    assert doc["workload.bert"] == fields(BertSpec)
    assert doc["workload.decoder"] == fields(DecoderSpec)
    assert doc["workload.vit"] == fields(VitSpec)
    assert doc["workload.op"] == fields(OpSpec)


def test_csv_columns_are_documented():
    doc = documented()
    assert doc["map.csv"] == set(MAP_CSV_FIELDS)
    assert doc["sweep.csv"] == set(sweep.FIELDS)
    assert doc["sweep_layers.csv"] == set(sweep.KEY_FIELDS) | set(LAYER_FIELDS)
    assert doc["cdf.csv"] == set(cdf.CSV_FIELDS)
    assert doc["validate.csv"] == set(PREDICTIONS_FIELDS)
    assert doc["validate.breakdown"] == set(BREAKDOWN_FIELDS)


def test_json_records_are_documented(outputs):
    doc = documented()
    m, b = outputs["map"], outputs["map_bert"]
    assert doc["map"] == set(m) == set(b)
    assert doc["map.arch"] == set(m["arch"])
    assert doc["map.total"] == set(m["total"])
    assert doc["map.layer"] == set().union(*(set(x) for x in m["layers"] + b["layers"]))
    s = outputs["schedule"]
    assert doc["schedule"] == set(s)
    assert doc["schedule.site"] == set(s["sites"][0])
    assert doc["schedule.schedule"] == set(s["sites"][0]["unfused"])
    assert doc["evaluate"] == set(outputs["evaluate"])
    p = outputs["pipeline"]
    assert doc["pipeline"] == set(p)
    if "validate" in outputs:
        assert doc["validate.summary"] == set(outputs["validate"])


def test_the_readme_links_the_formats_page():
    assert "docs/formats.md" in Path(ROOT / "README.md").read_text(encoding="utf-8")
