"""What the tile-sequence floor (gemmap/convseq.py) costs the batched conv model (run by hand).

    python benchmarks/bench_tileseq.py [--samples 100000] [--rounds 2] [--out FILE]

For each of three ResNet-50 convs, ``--samples`` uniform mappings of its space (what ``gemmap cdf``
costs per layer) are costed by ``evaluate_conv_batch`` with ``software.tile_sequence`` off and on,
alternating in each round so both see the same machine load; the table gives the best wall time of
each and their ratio, and how the samples split by tiled dims (the floor walks 3^m tile contexts a
mapping; mappings tiled in more than five dims have none). Without ``--out`` it rewrites the "Tile
sequence" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import date
from pathlib import Path

import numpy as np
from docsection import machine, publish

from gemmap.arch import load_arch
from gemmap.convmodel import evaluate_conv_batch
from gemmap.convspace import ConvMapSpace
from gemmap.workload import load_workload

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("conv1", "res3_3x3", "res5_1x1a")


def timed(arch, problem, batch) -> float:
    start = time.perf_counter()
    evaluate_conv_batch(arch, problem, batch)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100_000, help="mappings per layer (default: 100000)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: 2)")
    ap.add_argument("--out", help="write the section to this file instead of docs/benchmarks.md")
    args = ap.parse_args()
    on = load_arch(ROOT / "arch" / "gemmini-firesim.yaml")
    off = dataclasses.replace(on, software=dataclasses.replace(on.software, tile_sequence=False))
    wl = load_workload(ROOT / "workloads" / "resnet50.yaml")
    rows = []
    for name in LAYERS:
        problem = wl.problem(name)
        batch = ConvMapSpace(on, problem).sample(args.samples, seed=0)
        dims = np.array(problem.conv.dims)  # type: ignore[union-attr]
        tiled = (-(-dims // batch.tile) > 1).sum(axis=1)
        walked = float(np.mean(tiled <= 5))
        t_off, t_on = [], []
        for _ in range(args.rounds):
            t_off.append(timed(off, problem, batch))
            t_on.append(timed(on, problem, batch))
        rows.append((name, min(t_off), min(t_on), walked))
        print(f"{name}: {min(t_off):.2f} s without the floor, {min(t_on):.2f} s with it, {walked:.0%} walked")
    lines = [
        "## Tile sequence (benchmarks/bench_tileseq.py)",
        "",
        f"`python benchmarks/bench_tileseq.py --samples {args.samples} --rounds {args.rounds}`,"
        f" {date.today().isoformat()}; {machine()}.",
        f"`evaluate_conv_batch` on {args.samples:,} uniform mappings of each ResNet-50 conv (`arch/gemmini-firesim.yaml`),"
        ' `software.tile_sequence` off and on, alternating; best of the rounds. "Walked": the share of mappings'
        " tiled in at most five dims, whose tile sequence is costed.",
        "",
        "| layer | floor off (s) | floor on (s) | ratio | walked |",
        "|---|---:|---:|---:|---:|",
        *(f"| {n} | {a:.2f} | {b:.2f} | ×{b / a:.1f} | {w:.0%} |" for n, a, b, w in rows),
    ]
    section = "\n".join(lines)
    publish("bench_tileseq", section, args.out)


if __name__ == "__main__":
    main()
