"""Timeloop mappings (compact string and YAML) into gemmap's neutral loop nest."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemmap.errors import GemmapError
from gemmap.interop import (
    DATASPACES,
    DIMS,
    Level,
    Loop,
    LoopNest,
    check_covers,
    load_mapping,
    parse_compact,
    parse_yaml,
)

# Copied from DOSA's FireSim runs (ucb-bar/dosa, column mapping.mapping); the first is ResNet-50's conv1.
CONV1 = "L3[WIO] K8 Q28 - L2[WI] N1 K4X - L1[O] K2 S7 R7 Q4 P7 C3X - L0[W] P16"
SAMPLES = [
    CONV1,
    "L3[WIO] Q8 K16 R7 - L2[WI] N1 K4X - L1[O] S7 Q14 P112 C3X - L0[W] N1",
    "L3[WIO] P7 Q4 - L2[WI] N1 K16X - L1[O] K4 C4 Q14 P8 C16X - L0[W] N1",
    "L3[WIO] C4 K32 P2 Q4 - L2[WI] N1 K16X - L1[O] Q7 C64X - L0[W] P14",
    "L3[WIO] P4 - L2[WI] N1 K16X - L1[O] K4 S3 R3 Q14 C4 C16X - L0[W] Q4 P14",
    "L3[WIO] K16 C64 P4 Q28 - L2[WI] N1 K16X - L1[O] Q2 - L0[W] P14",
    "L3[WIO] R3 P13 K256 S3 C4 - L2[WI] N1 - L1[O] Q13 C64X - L0[W] N1",
    "L3[WIO] Q11 P55 S11 K8 C3 - L2[WI] N1 K8X - L1[O] R11 Q5 - L0[W] N1",
]

CONV1_YAML = """\
mapping:
  - target: DRAM
    type: temporal
    factors: C=1 K=8 N=1 P=1 Q=28 R=1 S=1
    permutation: QKCNPRS
  - target: Scratchpad
    type: spatial
    factors: R1 S1 P1 Q1 C1 K4 N1
    permutation: KRSPQCN
    split: 7
  - target: Scratchpad
    type: temporal
    factors: R=1 S=1 P=1 Q=1 C=1 K=1 N=1
    permutation: RSPQCKN
  - target: accumulator
    type: spatial
    factors: C=3
    permutation: C
  - target: Accumulator
    type: temporal
    factors: K=2 S=7 R=7 Q=4 P=7
    permutation: PQRSK  # innermost first
  - target: Registers
    type: temporal
    factors: P=16
    permutation: P
  - {target: Registers, type: bypass, keep: [Weights], bypass: [Inputs, Outputs]}
  - {target: Accumulator, type: datatype, keep: [Outputs], bypass: [Weights, Inputs]}
  - {target: Scratchpad, type: bypass, keep: [Inputs, Weights], bypass: [Outputs]}
  - {target: DRAM, type: bypass, keep: [Weights, Inputs, Outputs], bypass: []}
"""


@pytest.mark.parametrize("text", SAMPLES)
def test_compact_round_trip(text):
    assert parse_compact(text).to_compact() == text


def test_compact_structure_and_arithmetic():
    nest = parse_compact(CONV1)
    assert nest.names == ("L3", "L2", "L1", "L0")
    assert nest.level("L1").keeps == frozenset("O")
    assert nest.level("L2").loops == (Loop("N", 1), Loop("K", 4, spatial=True))
    # ResNet-50 conv1: C3 K64 P112 Q112 R7 S7 N1, each dim covered exactly.
    assert {d: nest.factor(d) for d in DIMS} == {"C": 3, "K": 64, "N": 1, "P": 112, "Q": 112, "R": 7, "S": 7}
    assert nest.factor("K", "L3") == 8 and nest.factor("K", "L2") == 4 and nest.factor("K", "L0") == 1
    assert nest.tile("K", "L2") == 4 * 2 and nest.tile("K", "L3") == 64 and nest.tile("K", "L0") == 1
    assert nest.tile("P", "L1") == 7 * 16 and nest.tile("P", "L0") == 16 and nest.tile("Q", "L1") == 4
    assert nest.temporal_order("L1") == ("K", "S", "R", "Q", "P")
    assert nest.temporal_order("L2") == ()  # N1 is trivial
    assert nest.spatial("L2") == {"K": 4} and nest.spatial("L1") == {"C": 3} and nest.spatial("L0") == {}
    check_covers(nest, {"C": 3, "K": 64, "P": 112, "Q": 112, "R": 7, "S": 7, "N": 1})


def test_compact_tolerates_extra_whitespace():
    assert parse_compact("  L3[WIO]  K8\tQ28 -  L2[WI] N1 K4X ").to_compact() == "L3[WIO] K8 Q28 - L2[WI] N1 K4X"


def test_yaml_equals_compact(tmp_path):
    path = tmp_path / "conv1.map.yaml"
    path.write_text(CONV1_YAML)
    assert parse_yaml(path) == parse_compact(CONV1)
    assert load_mapping(str(path)) == parse_compact(CONV1)
    assert load_mapping(path) == parse_compact(CONV1)
    assert load_mapping(CONV1) == parse_compact(CONV1)


def test_yaml_permutation_is_innermost_first():
    doc = {"mapping": [{"target": "L3", "type": "temporal", "factors": "K=2 C=3 P=5", "permutation": "KCP"}]}
    nest = parse_yaml(doc, level_names={"DRAM": "L3"})
    assert nest.temporal_order("L3") == ("P", "C", "K")  # K is innermost
    assert nest.to_compact() == "L3[WIO] P5 C3 K2"


def test_yaml_pads_missing_levels_dims_and_names():
    # Unmentioned levels are kept (all dataspaces, N1); unlisted permutation dims go outermost.
    doc = {"mapping": [{"target": "scratchpad", "type": "temporal", "factors": "K=2 C=3", "permutation": "K"}]}
    assert parse_yaml(doc).to_compact() == "L3[WIO] N1 - L2[WIO] C3 K2 - L1[WIO] N1 - L0[WIO] N1"
    custom = {"GlobalBuffer": "L1", "PE": "L0"}
    doc = {"mapping": [{"target": "PE", "type": "spatial", "factors": "K=4"}]}
    assert parse_yaml(doc, level_names=custom).to_compact() == "L1[WIO] N1 - L0[WIO] N1 K4X"


def test_trimmed_drops_trivial_loops():
    assert parse_compact(CONV1).trimmed().to_compact() == (
        "L3[WIO] K8 Q28 - L2[WI] K4X - L1[O] K2 S7 R7 Q4 P7 C3X - L0[W] P16"
    )


def test_check_covers_allows_padding_but_not_shortfall():
    nest = parse_compact(CONV1)
    check_covers(nest, {"P": 100, "K": 60})  # imperfect factorization: products exceed sizes
    with pytest.raises(GemmapError, match=r"^mapping: dim P: factors multiply to 112, less than its size 113$"):
        check_covers(nest, {"P": 113})


def _one_line(exc: pytest.ExceptionInfo[GemmapError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("L3[WIO] K8 - L1[O] Z4", "mapping: level L1: unknown dim 'Z' in loop 'Z4' (dims are C, K, N, P, Q, R, S)"),
        ("L3[WIO] K8 - L2[WI] K0", "mapping: level L2: bad loop 'K0'"),
        ("L2[WI] K04", "mapping: level L2: bad loop 'K04'"),
        ("L2[WI] K4Y", "mapping: level L2: bad loop 'K4Y' (spatial loops along Y"),
        ("L2[WI] K4;3", "mapping: level L2: bad loop 'K4;3' (residual"),
        ("L2[WI] 4K", "mapping: level L2: bad loop '4K'"),
        ("L2[WQ] K4", "mapping: level L2: unknown dataspace 'Q' in 'L2[WQ]'"),
        ("L2[WW] K4", "mapping: level L2: a dataspace is repeated in 'L2[WW]'"),
        ("L3[WIO] K8 - X2[WI] K4", "mapping: level #2: bad level header 'X2[WI]'"),
        ("L3[WIO] K8 - - L2[WI] K4", "mapping: level #2 is empty"),
        ("L3[WIO] K8 -", "mapping: level #2 is empty"),
        ("   ", "mapping: empty mapping string"),
        ("L2[WI] K4 - L2[W] C3", "mapping: level L2 appears twice"),
    ],
)
def test_compact_errors(text, expected):
    with pytest.raises(GemmapError) as exc:
        parse_compact(text)
    assert _one_line(exc).startswith(expected)


def test_nest_query_errors():
    nest = parse_compact(CONV1)
    with pytest.raises(GemmapError) as exc:
        nest.factor("K", "L7")
    assert _one_line(exc) == "mapping: unknown level 'L7' (levels are L3, L2, L1, L0)"
    with pytest.raises(GemmapError) as exc:
        nest.tile("Z", "L1")
    assert _one_line(exc).startswith("mapping: unknown dim 'Z'")
    with pytest.raises(GemmapError) as exc:
        check_covers(nest, {"M": 4})
    assert _one_line(exc).startswith("mapping: unknown dim 'M'")


def _entry(**kw):
    return {"mapping": [{"target": "Accumulator", "type": "temporal", **kw}]}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"mapping": [{"target": "L7", "type": "temporal"}]}, "mapping: entry 1: unknown level 'L7'"),
        (_entry(type="loop"), "mapping: entry 1 (target 'Accumulator' = level L1): bad type 'loop'"),
        (_entry(factors="C<=16"), "mapping: entry 1 (target 'Accumulator' = level L1): bad factors 'C<=16'"),
        (_entry(factors="Z=4"), "mapping: entry 1 (target 'Accumulator' = level L1): factors: unknown dim 'Z'"),
        (_entry(factors="C=0"), "mapping: entry 1 (target 'Accumulator' = level L1): factor 'C=0' must be"),
        (_entry(factors="C=4,3"), "mapping: entry 1 (target 'Accumulator' = level L1): factor 'C=4,3' has a residual"),
        (_entry(factors="C=4 C=2"), "mapping: entry 1 (target 'Accumulator' = level L1): factor of C given twice"),
        (_entry(permutation="KCK"), "mapping: entry 1 (target 'Accumulator' = level L1): permutation 'KCK' repeats"),
        (_entry(permutation="KZ"), "mapping: entry 1 (target 'Accumulator' = level L1): permutation 'KZ': unknown dim"),
        (_entry(keep=["Weights"]), "mapping: entry 1 (target 'Accumulator' = level L1): key 'keep' does not apply"),
        (_entry(factor="K=2"), "mapping: entry 1: unknown key 'factor' (did you mean 'factors'?)"),
        (
            {"mapping": [{"target": "PE", "type": "spatial", "factors": "K=4 C=4", "permutation": "KC", "split": 1}]},
            "mapping: entry 1 (target 'PE' = level L0): split 1 puts C along Y",
        ),
        (
            {"mapping": [{"target": "DRAM", "type": "bypass", "keep": ["Weights"], "bypass": ["weights"]}]},
            "mapping: entry 1 (target 'DRAM' = level L3): W both kept and bypassed",
        ),
        (
            {"mapping": [{"target": "DRAM", "type": "bypass", "keep": ["Psums"]}]},
            "mapping: entry 1 (target 'DRAM' = level L3): unknown dataspace 'Psums' in 'keep'",
        ),
        (
            {"mapping": [{"target": "L1", "type": "temporal"}, {"target": "Accumulator", "type": "temporal"}]},
            "mapping: level L1 has two temporal directives",
        ),
        ({"mapping": {"target": "L1"}}, "mapping: expected a list of directives under 'mapping:'"),
    ],
)
def test_yaml_errors(doc, expected):
    with pytest.raises(GemmapError) as exc:
        parse_yaml(doc)
    assert _one_line(exc).startswith(expected)


def test_yaml_file_errors_name_the_file(tmp_path: Path):
    path = tmp_path / "m.yaml"
    path.write_text("mapping:\n  - target: L7\n    type: temporal\n")
    with pytest.raises(GemmapError) as exc:
        load_mapping(str(path))
    assert _one_line(exc).startswith(f"{path}: mapping: entry 1: unknown level 'L7'")
    path.write_text("mapping:\n  - target: L1\n    target: L2\n")
    with pytest.raises(GemmapError) as exc:
        parse_yaml(path)
    assert "given twice" in _one_line(exc)


loops = st.builds(Loop, st.sampled_from(DIMS), st.integers(1, 4096), st.booleans())
levels = st.builds(
    lambda keeps, body: (frozenset(keeps), tuple(body)),
    st.sets(st.sampled_from(DATASPACES)),
    st.lists(loops, max_size=8),
)


@st.composite
def nests(draw) -> LoopNest:
    numbers = draw(st.lists(st.integers(0, 12), min_size=1, max_size=6, unique=True))
    return LoopNest(tuple(Level(f"L{n}", *draw(levels)) for n in numbers))


@given(nests())
def test_random_nests_round_trip(nest):
    text = nest.to_compact()
    assert parse_compact(text) == nest
    assert parse_compact(text).to_compact() == text


@given(nests(), st.sampled_from(DIMS))
def test_tiles_multiply_up(nest, dim):
    outer = nest.names[0]
    assert nest.tile(dim, outer) == nest.factor(dim) == math.prod(nest.factor(dim, n) for n in nest.names)
    for outer_name, inner_name in zip(nest.names, nest.names[1:]):
        assert nest.tile(dim, outer_name) == nest.factor(dim, outer_name) * nest.tile(dim, inner_name)
