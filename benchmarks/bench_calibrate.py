"""Time ``gemmap calibrate`` in one process and with worker processes, side by side (run by hand).

    python benchmarks/bench_calibrate.py [--data ../shared/validation/gemmini-firesim-16x16.csv]
                                         [--workers 2] [--rounds 1] [--out FILE]

Each round runs the command once in-process and once with ``--workers`` (alternating, so both see
the same machine load), checks that the two fitted YAMLs are identical, and reports the wall times
and their ratio. Without ``--out`` it rewrites the "Calibration" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from docsection import machine, publish

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "validation" / "gemmini-firesim-16x16.csv"


def run(data: Path, out: Path, workers: int) -> float:
    """Wall seconds of one ``gemmap calibrate`` (all default fields, 5 folds) writing ``out``."""
    cmd = [sys.executable, "-m", "gemmap", "calibrate", str(data), "--out", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="measured runs (default: the 16x16 file)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the second run (default: 2)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (default: 1)")
    ap.add_argument("--out", help="write the section to this file instead of docs/benchmarks.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            one = run(args.data, Path(tmp) / f"one{k}.yaml", 1)
            many = run(args.data, Path(tmp) / f"many{k}.yaml", args.workers)
            same = (Path(tmp) / f"one{k}.yaml").read_text() == (Path(tmp) / f"many{k}.yaml").read_text()
            rows.append((one, many, same))
            print(
                f"round {k + 1}: {one:.1f} s in one process, {many:.1f} s with {args.workers} workers, same fit: {same}"
            )
    lines = [
        "## Calibration (benchmarks/bench_calibrate.py)",
        "",
        f"`python benchmarks/bench_calibrate.py --data {args.data.name} --workers {args.workers} --rounds {args.rounds}`,"
        f" {date.today().isoformat()}; {machine()}.",
        f"`gemmap calibrate {args.data.name}` with all default fields and 5 folds, in one process and with"
        f" `--workers {args.workers}`, alternating; the two fitted YAMLs compared byte for byte.",
        "",
        "| round | one process (s) | workers (s) | speed-up | same fit |",
        "|---:|---:|---:|---:|---|",
        *(
            f"| {k + 1} | {one:.1f} | {many:.1f} | ×{one / many:.2f} | {'yes' if same else 'NO'} |"
            for k, (one, many, same) in enumerate(rows)
        ),  # fmt: skip
    ]
    section = "\n".join(lines)
    publish("bench_calibrate", section, args.out)


if __name__ == "__main__":
    main()
