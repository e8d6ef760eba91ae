"""Sweep throughput: points per second for ``gemmap sweep`` (run by hand).

    python benchmarks/bench_sweep.py [--search optimal] [--skip-nas] [--no-write]

Measures, each from a cold persistent cache (a fresh file) and as the user runs it (the CLI in a
subprocess, so start-up and plotting are included):

* the 8×8 spad×acc grid × 3 fusion policies (192 points) on BERT-base, with 1 and 2 worker
  processes and on a local Dask cluster of 2 worker processes; then the 2-worker run again with
  the cache warm (a second sweep over the same points);
* the BERT design space of hardware-aware NAS (depth 1–12 × hidden 128–768 step 128 × sequence
  64–512 step 8, heads = hidden/64, ffn = 4·hidden: 4,104 variants) on one memory config, fusion
  auto, 2 workers.

Writes its section of docs/benchmarks.md (between the bench_sweep markers; other sections kept).
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from docsection import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
SPAD = "16,32,64,128,256,512,1024,2048"
ACC = "8,16,32,64,128,256,512,1024"
FUSION = "none,all,auto"
NAS = [
    "--layers", ",".join(str(x) for x in range(1, 13)),
    "--hidden", ",".join(str(x) for x in range(128, 769, 128)),
    "--heads", "auto", "--ffn", "auto",
    "--seq-len", ",".join(str(x) for x in range(64, 513, 8)),
]  # fmt: skip


def run(args: list[str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, points in the table, and the CLI's last lines."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gemmap.cli", *args], cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"gemmap {' '.join(args)} failed:\n{r.stderr}")
    out = Path(args[args.index("--out") + 1])
    points = (out / "sweep.csv").read_text().count("\n") - 1
    return dt, points, r.stderr.strip().splitlines()[-2] if r.stderr.strip() else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--search", default="optimal", help="search method (default: optimal)")
    ap.add_argument("--skip-nas", action="store_true", help="skip the 4,104-variant design space")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep."))
    grid = ["sweep", "workloads/bert.yaml", "--spad-kib", SPAD, "--acc-kib", ACC, "--fusion", FUSION,
            "--search", args.search]  # fmt: skip
    rows: list[tuple[str, str, float, int]] = []

    def record(label: str, cmd: list[str], cache: Path) -> None:
        dt, n, last = run([*cmd, "--cache", str(cache)], ROOT)
        rows.append((label, " ".join(["gemmap", *cmd[:1], *cmd[1:]]), dt, n))
        print(f"{label}: {n} points in {dt:.1f} s = {n / dt:.2f} points/s  ({last})", flush=True)

    record("192 points, 1 process", [*grid, "--out", str(tmp / "w1")], tmp / "c1.sqlite")
    record("192 points, 2 workers", [*grid, "--workers", "2", "--out", str(tmp / "w2")], tmp / "c2.sqlite")
    record("192 points, 2 workers, warm cache", [*grid, "--workers", "2", "--out", str(tmp / "w2b")], tmp / "c2.sqlite")
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        record("192 points, Dask LocalCluster (2 workers)",
               [*grid, "--scheduler", cluster.scheduler_address, "--out", str(tmp / "dask")], tmp / "c3.sqlite")  # fmt: skip
    if not args.skip_nas:
        nas = ["sweep", "workloads/bert.yaml", *NAS, "--fusion", "auto", "--search", args.search, "--workers", "2",
               "--out", str(tmp / "nas")]  # fmt: skip
        record("BERT design space (4,104 variants), 2 workers", nas, tmp / "c4.sqlite")

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "## Sweep throughput (`benchmarks/bench_sweep.py`)",
        "",
        f"Run `python benchmarks/bench_sweep.py --search {args.search}{' --skip-nas' if args.skip_nas else ''}` on "
        f"{datetime.date.today().isoformat()}"
        f" (commit {commit}); machine: {machine()}.",
        "Each run is the CLI in a subprocess (start-up, CSV and plots included) from a cold persistent search"
        " cache unless marked warm. Grid: BERT-base (seq 512), scratchpad "
        f"{SPAD} KiB × accumulator {ACC} KiB × fusion {FUSION}, arch/gemmini.yaml, search `{args.search}`.",
        "",
        "| run | points | seconds | points/s |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {n} | {dt:.1f} | {n / dt:.2f} |" for label, _, dt, n in rows]
    lines += ["", "Commands (`--cache FILE` and `--out DIR` point into a temporary directory):", ""]
    lines += [f"- {label}: `{re.sub(r'/tmp/[^ ]+/', 'DIR/', cmd)}`" for label, cmd, _, _ in rows]
    section = "\n".join(lines) + "\n"
    print(section)
    if args.no_write:
        return
    write_section("bench_sweep", section)


if __name__ == "__main__":
    main()
