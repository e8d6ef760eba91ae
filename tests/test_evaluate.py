"""``gemmap evaluate`` / ``api.evaluate_mapping``: one Timeloop mapping converted as DOSA's flow hands it
to Gemmini, costed with the full breakdown; compact string == YAML; tiles and orders derived by hand;
one-line errors naming the loop, the level or the dim."""

from __future__ import annotations

import json

import pytest

from gemmap import api
from gemmap.cli import main
from gemmap.conv import ConvMapping
from gemmap.convmodel import evaluate_conv
from gemmap.errors import GemmapError
from gemmap.interop import parse_compact
from gemmap.mapping import Mapping
from gemmap.model import evaluate
from gemmap.validation.data import parse_runs
from gemmap.validation.predict import Rules, predict_cost
from gemmap.workload import load_workload
from tests.conftest import ROOT
from tests.test_validation_cli import HEADER_16, ROWS_16

# From ../shared/validation/gemmini-firesim-16x16.csv (DOSA artifact, BSD 2-Clause, (c) 2022 Charles Hong):
# a BERT matmul (Timeloop P = M = 128, C = K = 768, K = N = 768) and ResNet-50's res2a 3x3 conv.
MATMUL = "L3[WIO] K12 - L2[WI] N1 K16X - L1[O] K4 C48 P4 C16X - L0[W] P32"
MATMUL_LAYER = "matmul M=128 K=768 N=768"
CONV = "L3[WIO] Q14 P2 - L2[WI] N1 K16X - L1[O] K4 S3 R3 C4 Q2 P2 C16X - L0[W] Q2 P14"
CONV_LAYER = "conv C=64 K=64 P=56 Q=56 R=3 S=3 stride=1 padding=1"

MATMUL_YAML = """\
mapping:
  - {target: DRAM, type: temporal, factors: K=12, permutation: K}
  - {target: Scratchpad, type: spatial, factors: K=16, permutation: K, split: 1}
  - {target: Accumulator, type: spatial, factors: C=16, permutation: C}
  - target: Accumulator
    type: temporal
    factors: K=4 C=48 P=4
    permutation: PCK   # innermost first: K C P outer to inner
  - {target: Registers, type: temporal, factors: P=32, permutation: P}
  - {target: Scratchpad, type: bypass, keep: [Weights, Inputs], bypass: [Outputs]}
  - {target: Accumulator, type: bypass, keep: [Outputs], bypass: [Weights, Inputs]}
  - {target: Registers, type: bypass, keep: [Weights], bypass: [Inputs, Outputs]}
"""


@pytest.fixture(scope="module")
def big_spad():
    """Gemmini's defaults with room for MATMUL's double-buffered 128x768 A tile (no L2)."""
    return api.load_arch(ROOT / "arch" / "gemmini.yaml").with_overrides(spad_kib=512)


def test_compact_and_yaml_give_the_same_result(tmp_path, big_spad):
    path = tmp_path / "bert.map.yaml"
    path.write_text(MATMUL_YAML)
    layer = api.layer_from_spec(MATMUL_LAYER)
    compact = api.evaluate_mapping(big_spad, layer, MATMUL)
    from_yaml = api.evaluate_mapping(big_spad, layer, str(path))
    from_nest = api.evaluate_mapping(big_spad, layer, parse_compact(MATMUL))
    assert compact.nest == from_yaml.nest == from_nest.nest
    assert compact.mapping == from_yaml.mapping and compact.call == from_yaml.call
    assert compact.cost == from_yaml.cost == from_nest.cost


def test_matmul_tiles_and_order_by_hand(big_spad):
    ev = api.evaluate_mapping(big_spad, api.layer_from_spec(MATMUL_LAYER), MATMUL)
    # accumulator tile: P (M) = P4@L1 · P32@L0 = 128; C (K) = C48@L1 · C16X@L1 = 768; K (N) = K4@L1 · K16X@L2 = 64
    assert (ev.call.tile_I, ev.call.tile_J, ev.call.tile_K) == (128 // 16, 64 // 16, 768 // 16)
    # L3 has only K (N): perm = "K" + rest of CRSKPQN innermost first, so M and K (no L3 loop) are outside N
    assert ev.call.perm == "KCRSPQN"
    assert ev.mapping == Mapping("ws", (128, 768, 64), (1, 1, 1), "MKN", "MKN", db_spad=True, db_acc=True)
    assert ev.notes == ()
    assert ev.cost == evaluate(big_spad, ev.problem, ev.mapping)
    d = ev.to_dict()
    assert d["gemmini_call"]["function"] == "tiled_matmul" and d["mapping"]["local_tile"] == {
        "M": 128,
        "K": 768,
        "N": 64,
    }


def test_matmul_floors_tiles_to_dim_blocks_and_keeps_the_order(gemmini):
    # M = 160: P tile 5·8 = 40 runs as 32 (2 blocks of 16); L3 P4 K12 -> order innermost first K, P
    text = "L3[WIO] P4 K12 - L2[WI] N1 K16X - L1[O] K4 C48 P5 C16X - L0[W] P8"
    ev = api.evaluate_mapping(gemmini, api.layer_from_spec("matmul M=160 K=768 N=768"), text)
    assert ev.call.tile_I == 2 and ev.mapping.local == (32, 768, 64)
    assert ev.call.perm == "KPCRSQN" and ev.mapping.dram_order == "KMN"
    assert any("tile M = 40 runs as 32" in n for n in ev.notes)


def test_reduction_outside_spills_partial_sums(gemmini):
    # L3 innermost first P, K, C: the K (reduction) loop is outermost, so each output tile is revisited
    text = "L3[WIO] C2 K12 P2 - L2[WI] N1 K16X - L1[O] K4 C24 P4 C16X - L0[W] P16"
    ev = api.evaluate_mapping(gemmini, api.layer_from_spec(MATMUL_LAYER), text)
    assert ev.mapping.dram_order == "KNM" and ev.mapping.local == (64, 384, 64)
    assert ev.cost.dram_bytes_by_tensor["C"] > ev.dram_compulsory_by_tensor["C"]


def test_with_the_reduction_innermost_it_agrees_with_the_validation_predictor():
    """DOSA's rows 23 (matmul) and 1 (1x1 conv) have no reduction loop at L3, so the correct execution
    and DOSA's fork (partial sums never leave the accumulator) are the same run."""
    runs, _ = parse_runs("\n".join([HEADER_16, ROWS_16[3], ROWS_16[1]]) + "\n", "rows")
    arch = api.load_arch(ROOT / "arch" / "gemmini-firesim.yaml")
    for run, spec in zip(runs, (MATMUL_LAYER, "conv C=64 K=64 P=56 Q=56 R=1 S=1")):
        ev = api.evaluate_mapping(arch, api.layer_from_spec(spec), run.mapping)
        # the shipped arch starts cold and aligns its tensors to a request (DOSA's binaries do not)
        cold = predict_cost(run, arch, rules=Rules(warm_mapped=False, template_alignment=False))
        assert (ev.cost.cycles, ev.cost.dram_bytes) == (cold.cycles, cold.dram_bytes)


def test_conv_from_a_workload_layer(gemmini):
    layer = load_workload(ROOT / "workloads" / "resnet50.yaml").problem("res2a_3x3")
    ev = api.evaluate_mapping(gemmini, layer, CONV)
    # porows = Q2@L1·Q2@L0 = 4, pocols = P2@L1·P14@L0 = 28, pochs = K4·K16X, krows = S3, kcols = R3, kchs = C4·C16X
    assert ev.mapping == ConvMapping(tile=(1, 4, 28, 64, 3, 3, 64), order="bkrscpq")
    assert (ev.call.porows, ev.call.pocols, ev.call.padding, ev.call.in_dim) == (4, 28, 1, 56)
    assert ev.cost == evaluate_conv(gemmini, layer, ev.mapping)
    inline = api.evaluate_mapping(gemmini, api.layer_from_spec(CONV_LAYER), CONV)
    assert inline.mapping == ev.mapping and inline.cost == ev.cost


@pytest.mark.parametrize(
    "layer, mapping, expected",
    [
        (MATMUL_LAYER, MATMUL.replace("L0[W]", "L5[W]"), "level L5 has no place on Gemmini"),
        (MATMUL_LAYER, MATMUL.replace(" - L0[W] P32", ""), "level L0 (registers) is missing"),
        (MATMUL_LAYER, MATMUL.replace("K12", "Z12"), "level L3: unknown dim 'Z'"),
        (MATMUL_LAYER, MATMUL.replace("K12", "K6"),
         "dim K, the matmul's N: factors multiply to 384 (L3 K6 · L2 K16X · L1 K4), less than its size 768"),
        (CONV_LAYER, CONV.replace("Q14", "Q7"), "dim Q (output rows, the layer's P): factors multiply to 28"),
        (MATMUL_LAYER, MATMUL + " Q2", "loop Q2 at L0 (registers): a matmul has no Q"),
        (MATMUL_LAYER, MATMUL.replace("P4 C16X", "P4X C16X"), "spatial loop P4X at L1 (accumulator) cannot run"),
        (MATMUL_LAYER, MATMUL.replace("K16X", "K32X").replace("K4 ", "K2 "), "K32X at L2 needs 32 array columns"),
        (MATMUL_LAYER, MATMUL, "scratchpad needs 18432 rows, has 16384"),
        ("matmul M=128 K=768 N=768 X=1", MATMUL, "matmul does not take 'X'; it takes M, K, N"),
        ("matmull M=128 K=768 N=768", MATMUL, "unknown kind 'matmull' (did you mean 'matmul'?)"),
        (CONV_LAYER.replace("stride", "strde"), CONV, "conv does not take 'strde' (did you mean 'stride'?)"),
        ("conv C=64 K=64 P=56 Q=56 R=3", CONV, "missing S (a conv needs C, K, P, Q, R, S)"),
        ("matmul M=128 K=768 N=0", MATMUL, "'N': input should be greater than or equal to 1"),
        ("matmul M=128 K=768 N=768 N=2", MATMUL, "'N' given twice"),
        ("matmul M=128 K=768 N=76.8", MATMUL, "bad field 'N=76.8'"),
        ("conv C=64 K=64 P=56 Q=28 R=3 S=3 padding=1", CONV.replace("Q14", "Q28"), "tiled_conv runs square convs"),
    ],
)  # fmt: skip
def test_errors_are_one_line_naming_what(gemmini, layer, mapping, expected):
    with pytest.raises(GemmapError) as err:
        api.evaluate_mapping(gemmini, api.layer_from_spec(layer), mapping)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_cli_end_to_end_json(tmp_path, capsys):
    out = tmp_path / "e.json"
    args = ["evaluate", "--layer", MATMUL_LAYER, "--mapping", MATMUL, "--spad-kib", "512", "--json", str(out)]
    assert main(args) == 0
    shown = capsys.readouterr().out
    assert "tiled_matmul(I=128, J=768, K=768, tile_I=8, tile_J=4, tile_K=48" in shown
    assert "DRAM traffic" in shown and "for n1 in [0:12)" in shown
    data = json.loads(out.read_text())
    assert data["timeloop_mapping"] == MATMUL
    assert data["mapping"]["dram_order"] == "MKN"
    assert data["gemmini_call"]["tile_K"] == 48
    cost = data["cost"]
    assert cost["cycles"] >= cost["cycles_breakdown"]["compute"] and cost["dram_bytes"] >= cost["compulsory_dram_bytes"]
    assert set(cost["energy_breakdown_pj"]) >= {"mac", "spad", "acc", "dram"}
    assert cost["dram_compulsory_by_tensor"]["B"] == 768 * 768


def test_cli_workload_layer_and_errors(capsys):
    assert main(["evaluate", str(ROOT / "workloads" / "resnet50.yaml"), "--layer", "res2a_3x3", "--mapping", CONV]) == 0
    assert "tiled_conv(batch_size=1, in_dim=56" in capsys.readouterr().out
    assert main(["evaluate", "--layer", "ffn1", "--mapping", MATMUL]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "names a layer: give the WORKLOAD file too" in err
    assert main(["evaluate", "--layer", MATMUL_LAYER, "--mapping", "L3[WIO] K12 - L2[WI] N1 K16X"]) == 2
    assert (
        capsys.readouterr().err
        == "gemmap: error: mapping: level L1 (accumulator) is missing (levels are L3, L2, L1, L0)\n"
    )
