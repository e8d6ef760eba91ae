"""``gemmap export timeloop``: the written mappings read back through gemmap's own Timeloop import
(as ``gemmap evaluate --mapping FILE`` reads them) to the identical cost."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gemmap import api
from gemmap.cli import main
from gemmap.conv import ConvMapping
from gemmap.convmodel import evaluate_of, invalid_reason_of
from gemmap.interop.export import export_files, export_layer, export_layers, file_stem
from gemmap.interop.timeloop import load_mapping, parse_yaml
from gemmap.interop.timeloop_nest import spatial_split
from gemmap.interop.timeloop_write import mapping_doc
from gemmap.mapping import ORDERS, Mapping
from gemmap.model import evaluate
from gemmap.workload import Problem

ROOT = Path(__file__).resolve().parent.parent


def _mapped(arch, workload: str, method: str = "heuristic"):
    return api.map_workload(
        arch, api.load_workload(ROOT / "workloads" / workload), api.SearchOptions(method=method, dataflow="ws")
    )


def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize("workload", ["bert.yaml", "resnet50.yaml"])
def test_every_layer_round_trips_to_the_identical_cost(gemmini, tmp_path, workload):
    result = _mapped(gemmini, workload)
    mapped = [row for row in result.layers if row.mapping is not None]
    layers = export_layers(gemmini, result.layers)
    assert len(layers) == len(mapped) > 0
    out = _write(tmp_path, export_files(gemmini, layers))
    stems = {row["layer"]: row for row in csv.DictReader((out / "summary.csv").open())}
    nests = {layer.problem.name: layer.nest for layer in layers}
    for row in mapped:
        # the file, as a user would hand it back: gemmap evaluate --mapping LAYER.map.yaml
        path = out / stems[row.name]["mapping_file"]
        assert load_mapping(path) == nests[row.name]
        ev = api.evaluate_mapping(gemmini, row.problem, path)
        got = (ev.cost.cycles, ev.cost.energy_pj, ev.cost.dram_bytes)
        assert got == (row.cycles, row.energy_pj, row.dram_bytes), row.name
        assert ev.notes == ()
        assert stems[row.name]["round_trip"] == "exact"


def test_compact_form_of_a_matmul(gemmini):
    """BERT's ffn1 under Gemmini's tiler: the DRAM loops in the software order, K across the columns,
    C across the rows, M streamed in the registers' level."""
    result = _mapped(gemmini, "bert.yaml")
    ffn1 = next(x for x in export_layers(gemmini, result.layers) if x.problem.name == "ffn1")
    Tm, Tk, Tn = ffn1.mapping.local
    text = ffn1.nest.to_compact()
    assert text.endswith(f"L2[WI] N1 K16X - L1[O] C{Tk // 16} K{Tn // 16} C16X - L0[W] P{Tm}")
    assert load_mapping(text) == ffn1.nest
    assert parse_yaml(mapping_doc(ffn1.nest)) == ffn1.nest  # the YAML says the same as the compact form


def test_single_buffered_choice_is_named_not_hidden(gemmini):
    """A mapping may single-buffer (here attn_av with an accumulator tile that fits only once); the
    import (DOSA's flow) always double-buffers, so that layer is marked and says why; attn_qk's
    optimum round-trips."""
    bert = api.load_workload("bert")
    out = {}
    qk = bert.problem("attn_qk")
    result = api.find_mapping(gemmini, qk, api.SearchOptions(method="optimal", dataflow="ws"))
    out["attn_qk"] = export_layer(gemmini, qk, result.mapping, result.cost)
    av_problem = bert.problem("attn_av")
    single = Mapping("ws", (256, 256, 64), db_spad=True, db_acc=False)  # 256 x 4 = 1024 accumulator rows
    out["attn_av"] = export_layer(gemmini, av_problem, single, evaluate(gemmini, av_problem, single))
    assert out["attn_qk"].exact and out["attn_qk"].notes == ()
    av = out["attn_av"]
    assert (av.mapping.db_spad, av.mapping.db_acc) == (True, False)
    assert not av.exact
    assert av.reimported is None  # double-buffered, its accumulator tile does not fit
    assert av.notes[0].endswith(
        "(double-buffered as the import always runs it), which cannot run on gemmini-default: "
        "accumulator needs 2048 rows, has 1024"
    )


class _TreeLoader(yaml.SafeLoader):
    pass


_TreeLoader.add_constructor("!Container", lambda loader, node: {"node": "Container", **loader.construct_mapping(node)})
_TreeLoader.add_constructor("!Component", lambda loader, node: {"node": "Component", **loader.construct_mapping(node)})


def test_architecture_tree(gemmini, transformer_arch):
    from gemmap.interop.timeloop_write import arch_text

    doc = yaml.load(arch_text(gemmini), Loader=_TreeLoader)  # noqa: S506 - a SafeLoader subclass
    assert doc["architecture"]["version"] == 0.4
    nodes = doc["architecture"]["nodes"]
    assert [n["name"] for n in nodes] == ["system", "DRAM", "gemmini", "Scratchpad", "columns", "Accumulator", "rows",
                                           "Registers", "MACC"]  # fmt: skip
    by = {n["name"]: n for n in nodes}
    assert by["Scratchpad"]["attributes"]["depth"] == gemmini.spad_rows == 16384
    assert by["Scratchpad"]["attributes"]["width"] == 128
    assert by["Scratchpad"]["constraints"]["dataspace"] == {"keep": ["Weights", "Inputs"], "bypass": ["Outputs"]}
    assert by["Accumulator"]["attributes"]["depth"] == gemmini.acc_rows
    assert (
        by["Scratchpad"]["attributes"]["multiple_buffering"]
        == by["Accumulator"]["attributes"]["multiple_buffering"]
        == 2
    )
    assert by["columns"]["spatial"] == by["rows"]["spatial"] == {"meshX": 16}
    assert by["DRAM"]["attributes"]["width"] == 128
    l2 = yaml.load(arch_text(transformer_arch), Loader=_TreeLoader)["architecture"]["nodes"][2]  # noqa: S506
    assert (
        l2["name"] == "SharedL2"
        and l2["attributes"]["depth"] * l2["attributes"]["width"] == transformer_arch.l2.bytes * 8
    )


def test_problem_files(gemmini, tmp_path):
    result = _mapped(gemmini, "resnet50.yaml")
    files = export_files(gemmini, export_layers(gemmini, result.layers[:3]))
    conv1 = yaml.safe_load(files["conv1.problem.yaml"])["problem"]
    inst = conv1["instance"]
    # conv1: 7x7 stride 2 onto 112x112; P = output columns, Q = output rows (padded up to the tiles)
    assert (inst["C"], inst["K"], inst["R"], inst["S"], inst["N"], inst["Wstride"]) == (3, 64, 7, 7, 1, 2)
    assert inst["P"] >= 112 and inst["Q"] >= 112
    assert conv1["shape"]["data_spaces"][1]["projection"][2] == [["R", "Wdilation"], ["P", "Wstride"]]
    bert = export_files(gemmini, export_layers(gemmini, _mapped(gemmini, "bert.yaml").layers))
    ffn1 = yaml.safe_load(bert["ffn1.problem.yaml"])["problem"]["instance"]
    # M = 512 in tiles of 112 rows (Gemmini's tiler): Timeloop's exact factorization needs P = 5 x 112
    assert (ffn1["P"], ffn1["C"], ffn1["N"], ffn1["Q"], ffn1["R"], ffn1["S"]) == (560, 768, 1, 1, 1, 1)
    assert ffn1["K"] >= 3072
    assert "# P = 560, not 512: the last tile is partial" in bert["ffn1.problem.yaml"]
    assert set(bert) == {"arch.yaml", "summary.csv"} | {
        f"{n}.{k}.yaml" for n in result_names(bert) for k in ("problem", "map")
    }


def result_names(files: dict[str, str]) -> set[str]:
    return {name.split(".")[0] for name in files if name.endswith(".map.yaml")}


def test_spatial_split_and_file_stems():
    assert spatial_split(64, 16) == (16, 4)
    assert spatial_split(24, 16) == (12, 2)
    assert spatial_split(7, 16) == (7, 1)
    taken: set[str] = set()
    assert [file_stem(n, taken) for n in ("/enc/MatMul", "enc_MatMul", "..", "a b")] == [
        "_enc_MatMul", "enc_MatMul", "layer", "a_b"
    ]  # fmt: skip


def test_cli(tmp_path, capsys):
    out = tmp_path / "tl"
    assert (
        main(["export", "timeloop", str(ROOT / "workloads" / "bert.yaml"), "--search", "heuristic", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "wrote 18 files" in printed
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["layer"] for r in rows] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "attn_qk",
        "attn_av",
        "out_proj",
        "ffn1",
        "ffn2",
    ]
    assert {r["round_trip"] for r in rows} == {"exact"}
    assert (
        main(
            [
                "evaluate",
                str(ROOT / "workloads" / "bert.yaml"),
                "--layer",
                "ffn1",
                "--mapping",
                str(out / "ffn1.map.yaml"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    # the family overrides, as for map: GPT-2 decoding one token against 64 cached ones (M = 1 GEMVs)
    dec = tmp_path / "dec"
    assert main(["export", "timeloop", "gpt2", "--phase", "decode", "--kv-len", "64", "--search", "heuristic",
                 "--out", str(dec)]) == 0  # fmt: skip
    rows = {r["layer"]: r["round_trip"] for r in csv.DictReader((dec / "summary.csv").open())}
    # attention spans the 64 cached tokens and the new one: 65 is no whole number of DIM blocks, which
    # DOSA's flow (the import) floors to 64; every other layer round-trips
    assert {name for name, trip in rows.items() if trip != "exact"} == {"attn_qk", "attn_av"}
    assert "note: attn_qk: tile N = 65 runs as 64" in capsys.readouterr().out
    assert yaml.safe_load((dec / "q_proj.problem.yaml").read_text())["problem"]["instance"]["P"] == 1
    # one line, exit 2, before any search
    assert main(["export", "timeloop", "bert", "--dataflow", "os", "--out", str(out)]) == 2
    assert "weight-stationary" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["export", "timeloop", "bert", "--out", str(blocker / "sub")]) == 2
    assert capsys.readouterr().err.startswith("gemmap: error: cannot write to")


def test_a_layer_the_import_refuses_is_still_written(gemmini):
    """A non-square conv: Timeloop states it, DOSA's square tiled_conv call (the import) cannot."""
    problem = api.layer_from_spec("conv C=16 K=16 P=8 Q=12 R=3 S=3 stride=1 padding=1 H=8 W=12")
    result = api.find_mapping(gemmini, problem, api.SearchOptions(method="heuristic"))
    layer = export_layer(gemmini, problem, result.mapping, result.cost)
    assert not layer.exact and layer.reimported is None
    assert layer.notes == (
        "gemmap's Timeloop import refuses this file: layer 'conv': tiled_conv runs square convs (one in_dim, "
        "out_dim, kernel_dim); this one has 8x12 input, 8x12 output, 3x3 kernel",
    )
    files = export_files(gemmini, [layer])
    assert yaml.safe_load(files["conv.problem.yaml"])["problem"]["instance"]["Q"] >= 8  # rows
    assert "note: gemmap's Timeloop import refuses this file" in files["conv.map.yaml"]
    assert "differs" in files["summary.csv"]


# --- the inverse property: any mapping DOSA's flow can state comes back identical ---------------

_blocks = st.integers(1, 12).map(lambda b: 16 * b)


@st.composite
def _dosa_gemm(draw, arch):
    """A WS, double-buffered GEMM mapping with tiles in whole DIM blocks (what DOSA's flow runs)."""
    M, K, N = draw(_blocks), draw(_blocks), draw(_blocks)
    problem = Problem("mm", M, K, N)
    local = (min(draw(_blocks), M), min(draw(_blocks), K), min(draw(_blocks), N))
    mapping = Mapping("ws", local, dram_order=draw(st.sampled_from(ORDERS)))  # type: ignore[arg-type]
    assume(invalid_reason_of(arch, problem, mapping) is None)
    return problem, mapping


@st.composite
def _square_conv(draw, arch):
    """A square conv and a double-buffered tiled_conv mapping of any tiles and loop order."""
    n, c, k = draw(st.integers(1, 2)), draw(st.integers(1, 40)), draw(st.integers(1, 40))
    r, out, stride = draw(st.sampled_from((1, 3))), draw(st.integers(1, 12)), draw(st.integers(1, 2))
    problem = api.layer_from_spec(
        f"conv B={n} C={c} K={k} P={out} Q={out} R={r} S={r} stride={stride} padding={r // 2}"
    )
    assert problem.conv is not None
    tile = tuple(draw(st.integers(1, d)) for d in problem.conv.dims)
    mapping = ConvMapping(tile=tile, order="".join(draw(st.permutations("bpqkrsc"))))  # type: ignore[arg-type]
    assume(invalid_reason_of(arch, problem, mapping) is None)
    return problem, mapping


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_dosa_expressible_mappings_round_trip(gemmini, data):
    for strategy in (_dosa_gemm(gemmini), _square_conv(gemmini)):
        problem, mapping = data.draw(strategy)
        layer = export_layer(gemmini, problem, mapping, evaluate_of(gemmini, problem, mapping))
        assert layer.exact, (mapping, layer.notes)
        assert parse_yaml(mapping_doc(layer.nest)) == layer.nest
