"""Wall time of ``gemmap cdf`` as a user runs it (run by hand).

    python benchmarks/bench_cdf.py [--samples 100000] [--no-write]

Runs ``gemmap cdf workloads/bert.yaml --samples N`` in a subprocess (start-up, sampling, the three
proven optima per layer shape, plots and files included) with 1 and with 2 worker processes, one
after the other in the same run, and writes its section of docs/benchmarks.md between the
bench_cdf markers (other sections kept). Target (issue 3): 100K samples for every BERT-base layer
in ≤ 30 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docsection import machine, write_section

ROOT = Path(__file__).resolve().parent.parent


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gemmap.cli", *args], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gemmap {' '.join(args)} failed:\n{r.stderr}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            cmd = [
                "cdf",
                "workloads/bert.yaml",
                "--samples",
                str(args.samples),
                "--workers",
                str(workers),
                "--out",
                f"{tmp}/w{workers}",
            ]
            rows.append((workers, timed(cmd), " ".join(["gemmap", *cmd[:-2], "--out", "DIR"])))
    lines = [
        "## CDF (benchmarks/bench_cdf.py)",
        "",
        f"Command: `python benchmarks/bench_cdf.py --samples {args.samples}` — {datetime.date.today()}, {machine()}. "
        "Wall time of the whole command: 5 BERT-base layer shapes, each sampled and searched to 3 proven optima "
        "(latency, energy, EDP), plots and files written. Target ≤ 30 s on 2 cores.",
        "",
        "| command | workers | seconds |",
        "|---|---|---|",
        *(f"| `{cmd}` | {w} | {s:.1f} |" for w, s, cmd in rows),
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section("bench_cdf", section)


if __name__ == "__main__":
    main()
