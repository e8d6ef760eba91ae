"""The hand-run line-level cache trace (benchmarks/cache_trace): its line walk and its L2 on cases counted by
hand. Needs a C compiler (the simulator is C, built on first use); skipped without one."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="the cache simulator needs a C compiler (cc)")


@pytest.fixture(scope="module")
def trace():
    spec = importlib.util.spec_from_file_location("cache_trace", ROOT / "benchmarks" / "cache_trace" / "trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_become_lines_and_requests(trace):
    tr = trace.Trace()
    base = trace.BASE
    tr.rows(base + 64 * np.arange(4), 16, True)  # four 16-byte output rows 64 bytes apart: partial writes
    tr.rows(base + 4096 + 16 * np.arange(4), 64, False)  # 64-byte rows 0, 16, 32, 48 bytes into a line
    tr.rows(base + 8192, 64, True)  # one aligned 64-byte row: a whole-line write
    lines, flags = tr.arrays()
    first = base >> 6
    assert lines[:4].tolist() == [first, first + 1, first + 2, first + 3] and flags[:4].tolist() == [1, 1, 1, 1]
    assert lines[4:11].tolist() == [first + 64] + [first + 64, first + 65] * 3 and not flags[4:11].any()
    assert lines[11:].tolist() == [first + 128] and flags[11:].tolist() == [3]
    # requests and beats as the DMA walks them (gemmap.dma.packet_costs): four 16-B writes; the reads take
    # 64 | 64 + 16 | 32 + 32 | 16 + 64 bytes (1 + 2 + 2 + 2 requests, 4 + 5 + 4 + 5 beats); one 64-B write
    assert (tr.requests, tr.beats) == (4 + 7 + 1, 4 + 18 + 4)


def test_l2_hits_on_the_second_pass_and_random_replacement_in_one_set(trace):
    # 1,024 consecutive lines, one per L2 set: all miss cold, all hit on the second pass.
    lines = np.arange(1024, dtype=np.int64) + (trace.BASE >> 6)
    cold, warm = trace.simulate(lines, np.zeros(1024, np.uint8))
    assert (cold["l2_read_miss"], warm["l2_hit"], warm["l2_read_miss"]) == (1024, 1024, 0)
    # 9 lines 64 KiB apart share one set of 8 ways: a cyclic walk over them keeps missing some.
    same_set = (trace.BASE >> 6) + 1024 * np.arange(9, dtype=np.int64)
    walk = np.tile(same_set, 20)
    passes = trace.simulate(walk, np.zeros(walk.size, np.uint8), passes=2)
    assert 0 < passes[1]["l2_read_miss"] < walk.size
    # a partial write to a line that is not there fetches it; a whole-line write does not
    cold = trace.simulate(np.array([5, 6], np.int64), np.array([1, 3], np.uint8), passes=1)[0]
    assert (cold["l2_partial_write_miss"], cold["l2_full_write_miss"], cold["llc_read_miss"]) == (1, 1, 1)
