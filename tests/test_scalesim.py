"""gemmap's compute cycles against SCALE-Sim v3's systolic timing, with SCALE-Sim's assumptions.

SCALE-Sim is not a dependency (scalesim 3.0.0 fails with numpy >= 2.4), so its figures are derived
here from its own rules, read from scalesim-project/scale-sim-v3 (scalesim/compute/
systolic_compute_ws.py and systolic_compute_os.py, at fab89b7):

* a GEMM (M, K, N) is an ifmap M×K, a filter K×N and an ofmap M×N operand matrix;
* WS: folds = ceil(K/R)·ceil(N/C); each fold's demand matrices hold R rows of weight preload,
  M streamed rows, C−1 drain rows and R−1 skew rows: 2R + C + M − 2 cycles;
* OS: folds = ceil(M/R)·ceil(N/C); each fold: K streamed rows + R−1 + C−1 skew + the R-row
  output drain, less one row of overlap: R + C + K − 2 cycles;
* partial folds are padded to the full array; folds are serialized with no gap;
* the report's "Total Cycles" is the index of the last serviced row, i.e. the length − 1.

With stationary_overlap off (SCALE-Sim's PEs hold one weight/output set) and the whole GEMM as one
local tile (SCALE-Sim streams the full M per fold), gemmap's compute cycles equal that length.
The helper checked the rule against SCALE-Sim v3 run directly: 32³ WS 311, OS 247; 17×33×65 WS 944,
OS 629 reported total cycles (100×7×3 on 8×4: WS 118, OS 221 demand rows).
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from gemmap.mapping import Mapping, invalid_reason
from gemmap.model import evaluate
from gemmap.workload import Problem


def scalesim_cycles(dataflow: str, M: int, K: int, N: int, R: int, C: int) -> int:
    if dataflow == "ws":
        return math.ceil(K / R) * math.ceil(N / C) * (2 * R + C + M - 2)
    return math.ceil(M / R) * math.ceil(N / C) * (R + C + K - 2)


REPORTED = {("ws", 32, 32, 32): 311, ("os", 32, 32, 32): 247, ("ws", 17, 33, 65): 944, ("os", 17, 33, 65): 629}


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize(
    "shape,array",
    [((32, 32, 32), (16, 16)), ((17, 33, 65), (16, 16)), ((100, 7, 3), (8, 4)), ((64, 200, 48), (16, 16)),
     ((255, 129, 31), (16, 16)), ((96, 96, 96), (32, 8))],
)  # fmt: skip
def test_compute_cycles_equal_scalesim(gemmini, dataflow, shape, array):
    R, C = array
    arch = dataclasses.replace(
        gemmini,
        pe_array=dataclasses.replace(gemmini.pe_array, rows=R, cols=C, stationary_overlap=False),
        scratchpad=dataclasses.replace(gemmini.scratchpad, kib=1024),
        accumulator=dataclasses.replace(gemmini.accumulator, kib=1024),
    )
    p = Problem("s", *shape)
    m = Mapping(dataflow, shape)
    assert invalid_reason(arch, p, m) is None
    expected = scalesim_cycles(dataflow, *shape, R, C)
    assert evaluate(arch, p, m).compute_cycles == expected
    if (dataflow, *shape) in REPORTED and array == (16, 16):
        assert expected - 1 == REPORTED[(dataflow, *shape)]
