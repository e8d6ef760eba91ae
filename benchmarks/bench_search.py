"""Search benchmarks (run by hand): ``python benchmarks/bench_search.py``.

Measures the batched model's throughput on BERT's ffn1 shape (one core), the time to a proven
optimum per BERT-base layer on both shipped arches, the best EDP of ``random`` at 1K/10K/100K
samples against the optimum, and Gemmini's heuristic tiler against the optimum. Prints a
markdown table and rewrites the "Search" section of docs/benchmarks.md (other sections kept).
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from docsection import machine, write_section  # noqa: E402

from gemmap.arch import load_arch  # noqa: E402
from gemmap.mapspace import MapSpace  # noqa: E402
from gemmap.model import evaluate_batch  # noqa: E402
from gemmap.search import SearchOptions, find_mapping  # noqa: E402
from gemmap.workload import Problem  # noqa: E402

ARCHES = ("arch/gemmini.yaml", "arch/gemmini-transformer.yaml")
LAYERS = {
    "q/k/v/out_proj": (512, 768, 768),
    "attn_qk": (512, 64, 512),
    "attn_av": (512, 512, 64),
    "ffn1": (512, 768, 3072),
    "ffn2": (512, 3072, 768),
}
SECTION = "## Search (benchmarks/bench_search.py)"


def throughput() -> list[str]:
    lines = ["| arch | mappings | seconds | mappings/s (1 core) |", "|---|---|---|---|"]
    p = Problem("ffn1", *LAYERS["ffn1"])
    for path in ARCHES:
        arch = load_arch(ROOT / path)
        batch = MapSpace(arch, p).sample(1_000_000, seed=0)
        evaluate_batch(arch, p, batch.take(np.arange(1000)))
        best = min(_timed(arch, p, batch) for _ in range(3))
        lines.append(f"| {arch.name} | {len(batch):,} | {best:.3f} | {len(batch) / best:,.0f} |")
    return lines


def _timed(arch, problem, batch) -> float:
    t = time.perf_counter()
    evaluate_batch(arch, problem, batch)
    return time.perf_counter() - t


def optimum_table() -> list[str]:
    head = "| arch | layer | M×K×N | space size | optimal EDP | proven | s to proof | evaluated | random 1K / opt | 10K / opt | 100K / opt | heuristic / opt |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for path in ARCHES:
        arch = load_arch(ROOT / path)
        for name, shape in LAYERS.items():
            p = Problem(name, *shape)
            size = MapSpace(arch, p).size().total
            opt = find_mapping(arch, p, SearchOptions(method="optimal", objective="edp"))
            ratios = []
            for n in (1_000, 10_000, 100_000):
                r = find_mapping(arch, p, SearchOptions(method="random", objective="edp", samples=n, seed=1))
                ratios.append(f"{r.cost.edp / opt.cost.edp:.3f}")
            heu = find_mapping(arch, p, SearchOptions(method="heuristic", objective="edp"))
            lines.append(
                f"| {arch.name} | {name} | {'×'.join(map(str, shape))} | {size:.3g} | {opt.cost.edp:.4g} | "
                f"{'yes' if opt.proven_optimal else 'NO'} | {opt.seconds:.2f} | {opt.evaluated:,} | "
                + " | ".join(ratios)
                + f" | {heu.cost.edp / opt.cost.edp:.3f} |"
            )
    return lines


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    rates, optima = throughput(), optimum_table()
    body = [
        SECTION,
        "",
        f"Command: `python benchmarks/bench_search.py` — {datetime.date.today().isoformat()}, {machine()}.",
        "",
        "Batched model (`model.evaluate_batch`), BERT ffn1 (512×768×3072), uniform valid samples, best of 3:",
        "",
        *rates,
        "",
        "Proven optimum (EDP) per BERT-base layer (seq 512), single-threaded; random = best of N uniform",
        "samples (seed 1) over the optimum; heuristic = Gemmini's `tiled_matmul_auto` tiler over the optimum:",
        "",
        *optima,
        "",
    ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("bench_search", text)


if __name__ == "__main__":
    main()
