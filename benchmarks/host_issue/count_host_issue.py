"""Count the host cycles DOSA's software spends issuing each tile (software.*_issue_cycles).

Run by hand; it needs ``riscv64-unknown-elf-gcc`` (Debian: gcc-riscv64-unknown-elf), ``qemu-riscv64``
and a checkout of ucb-bar/gemmini-rocc-tests at 959b23f7 (branch dosa; docs/validation.md)::

    python benchmarks/host_issue/count_host_issue.py --grt PATH/TO/gemmini-rocc-tests [--layers 40]

What it does, per kind (matmul, conv):

1. Fills the data-collection template (``gemmini-data-collection/templates/{matmul,conv}_tilings.c``)
   with random layers, tile sizes and loop orders (``--layers``, ``--seed``), the way
   ``gemmini_data_collection.py`` does; every value is a runtime array element, as in the real runs.
2. Builds it against the real ``include/gemmini.h`` with bareMetalC/Makefile's flags (``-O2
   -march=rv64gc -mcmodel=medany -std=gnu99 -ffast-math -fno-common -fno-builtin-printf
   -fno-tree-loop-distribute-patterns``). RoCC instructions become one ALU instruction that reads
   both operands (``runtime/rocc-software/src/xcustom.h``); libc calls are no-ops (``runtime/rt.c``).
3. Traces every executed instruction under ``qemu-riscv64 -singlestep -d exec,nochain`` and times the
   trace on Rocket's in-order pipeline (:func:`rocket_cycles`): one instruction per cycle plus the
   interlocks of RocketCore.scala @f5ebf26 (chipsalliance/rocket-chip, the commit chipyard-dosa pins):
   a load's result is not bypassed from EX (L836), a byte/halfword load's not from MEM either
   (L568, L843-845), and MUL/DIV go to the iterative MulDiv unit (L180: not pipelined unless
   ``mulUnroll == xLen``; WithNBigCores: ``mulUnroll = 8``, early out, subsystem/Configs.scala
   L99-102) whose result waits for its iterations (Multiplier.scala L103-123; 2 iterations for the
   < 2^16 operands of tile arithmetic) plus the request and response cycles.
4. Takes the cycles between the two ``rdcycle``s around each mapped call (the template's own timing
   window) and fits ``cycles = a + tile · tiles + loop · Σ steps of the loops around the innermost``
   by least squares, printing both coefficients and the relative residuals.

Branch mispredictions, cache misses and Gemmini back-pressure on RoCC commands are not modelled
(the last is the accelerator-side bound the cost model takes the max with).
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CFLAGS = [
    "-DBAREMETAL",
    "-O2",
    "-ffreestanding",
    "-fno-tree-loop-distribute-patterns",
    "-march=rv64gc",
    "-mabi=lp64d",
    "-mcmodel=medany",
    "-std=gnu99",
    "-ffast-math",
    "-fno-common",
    "-fno-builtin-printf",
    "-nostdlib",
    "-static",
    "-w",
]
#: the order tiled_conv / tiled_matmul_outer index their 7 loops by (gemmini.h @959b23f7 idx_to_dim)
LETTERS = "NQPKSRC"
LOADS_FAST = {"ld", "lw", "lwu", "c.ld", "c.lw", "c.ldsp", "c.lwsp", "fld", "flw", "c.fld", "c.fldsp"}
LOADS_SLOW = {"lb", "lbu", "lh", "lhu"}
MULDIV = re.compile(r"^(mul|div|rem)")
REG = re.compile(r"\b(zero|ra|sp|gp|tp|t[0-6]|s1[01]|s[0-9]|a[0-7])\b")
MUL_ITERATIONS = 2  # Multiplier.scala: early out once the remaining multiplier bits are zero, count ≥ 1


STORES = {"sd", "sw", "sh", "sb", "c.sd", "c.sw", "c.sdsp", "c.swsp", "fsd", "fsw", "c.fsd", "c.fsdsp"}
BRANCHES = ("beq", "bne", "blt", "bge", "c.beqz", "c.bnez")
#: compressed instructions whose first register is only written (the others read and write it)
C_WRITE_ONLY = {
    "c.li",
    "c.lui",
    "c.mv",
    "c.addi4spn",
    "c.addi16sp",
    "c.ld",
    "c.lw",
    "c.ldsp",
    "c.lwsp",
    "c.fld",
    "c.fldsp",
}


def _decode(binary: Path) -> dict[int, tuple[str, str | None, list[str], bool]]:
    """pc → (mnemonic, destination register, source registers, reads the cycle CSR) from objdump
    without aliases."""
    out = subprocess.run(
        ["riscv64-unknown-elf-objdump", "-d", "-M", "no-aliases", str(binary)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    table = {}
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+[0-9a-f]+\s+(\S+)\s*([^#<]*)", line)
        if not m:
            continue
        op, args = m.group(2), m.group(3)
        regs = REG.findall(args)
        jump_only = op in ("c.j", "c.jr") or (op in ("jal", "jalr") and regs[:1] == ["zero"])
        if op in STORES or op.startswith(BRANCHES) or jump_only or op in ("fence", "ecall"):
            dest, srcs = None, regs
        elif op == "c.jalr":
            dest, srcs = "ra", regs
        elif op.startswith("c.") and op not in C_WRITE_ONLY:
            dest, srcs = (regs[0] if regs else None), regs
        else:
            dest, srcs = (regs[0] if regs else None), regs[1:]
        rdcycle = op == "csrrs" and "cycle" in args
        table[int(m.group(1), 16)] = (op, None if dest == "zero" else dest, [r for r in srcs if r != "zero"], rdcycle)
    return table


def rocket_cycles(binary: Path, trace: Path) -> list[tuple[int, int]]:
    """(instructions, cycles) of every window between two consecutive ``rdcycle``s of the trace."""
    decode = _decode(binary)
    ready: dict[str, int] = collections.defaultdict(int)
    t = unit_free = count = 0
    marks: list[tuple[int, int]] = []
    with open(trace) as f:
        for line in f:
            m = re.search(r"/([0-9a-f]{16})/", line)
            if not m:
                continue
            op, dest, srcs, rdcycle = decode.get(int(m.group(1), 16), ("?", None, [], False))
            issue = max([t + 1] + [ready[r] for r in srcs])
            if MULDIV.match(op):
                issue = max(issue, unit_free)
                done = unit_free = issue + 3 + (MUL_ITERATIONS if op.startswith("mul") else 64)
            elif op in LOADS_FAST or op in ("jalr", "c.jalr"):
                done = issue + 2
            elif op in LOADS_SLOW:
                done = issue + 3
            else:
                done = issue + 1
            if dest:
                ready[dest] = done
            t = issue
            count += 1
            if rdcycle:
                marks.append((count, t))
    return [(b[0] - a[0] - 1, b[1] - a[1]) for a, b in zip(marks[0::2], marks[1::2])]


def _layers(kind: str, n: int, rng: random.Random) -> list[dict]:
    out = []
    for _ in range(n):
        perm = list(LETTERS)
        rng.shuffle(perm)
        if kind == "conv":
            R, dim = rng.choice([1, 3]), rng.choice([4, 6, 8])
            layer = dict(BATCH_SIZE=1, IN_DIM=dim, IN_CHANNELS=rng.choice([16, 32, 64]), OUT_CHANNELS=rng.choice([16, 32, 64]),
                         KERNEL_DIM=R, STRIDE=1, KERNEL_DILATION=1, TILE_BATCHES=1, TILE_OROWS=rng.choice([1, 2, 4]),
                         TILE_OCOLS=rng.choice([1, 2, 4]), TILE_OCHS=rng.choice([16, 32]), TILE_KROWS=rng.choice([1, R]),
                         TILE_KCOLS=rng.choice([1, R]), TILE_KCHS=rng.choice([16, 32]))  # fmt: skip
        else:
            layer = dict(DIM_I=16 * rng.choice([1, 2, 4, 8]), DIM_J=16 * rng.choice([1, 2, 4, 8]), DIM_K=16 * rng.choice([1, 2, 4, 8]),
                         TILE_OCOLS=16, TILE_OCHS=16, TILE_KCHS=rng.choice([16, 32]))  # fmt: skip
        layer.update(SPATIAL_TILE_KCHS=16, SPATIAL_TILE_OCHS=16, PERM_STR=f'"{"".join(perm)}"')
        out.append(layer)
    return out


def _trips(kind: str, layer: dict) -> list[int]:
    """Iterations of the 7 software loops in LETTERS order (gemmini.h @959b23f7 tiled_conv / tiled_matmul_outer)."""
    if kind == "conv":
        out_dim = layer["IN_DIM"]  # stride 1, padding R // 2, odd R
        limits = [
            1,
            out_dim,
            out_dim,
            layer["OUT_CHANNELS"],
            layer["KERNEL_DIM"],
            layer["KERNEL_DIM"],
            layer["IN_CHANNELS"],
        ]
        steps = [
            1,
            layer["TILE_OROWS"],
            layer["TILE_OCOLS"],
            layer["TILE_OCHS"],
            layer["TILE_KROWS"],
            layer["TILE_KCOLS"],
            layer["TILE_KCHS"],
        ]
        return [-(-a // b) for a, b in zip(limits, steps)]

    def blocks(t: int) -> int:  # matmul_tilings.c: tile in 16-element blocks
        return 1 if t < 16 else t >> 4

    return [1, 1, -(-layer["DIM_I"] // (16 * blocks(layer["TILE_OCOLS"]))), -(-layer["DIM_J"] // (16 * blocks(layer["TILE_OCHS"]))),
            1, 1, -(-layer["DIM_K"] // (16 * blocks(layer["TILE_KCHS"])))]  # fmt: skip


def _loop_steps(perm: str, trips: list[int]) -> tuple[int, int]:
    """(tiles, Σ iterations of the loops around the innermost) for ``perm`` (innermost first)."""
    levels = [0] * 7
    for d, letter in enumerate(LETTERS):
        levels[6 - perm.index(letter)] = trips[d]
    steps = np.cumprod(levels)
    return int(steps[-1]), int(steps[:-1].sum())


def _timed_windows(name: str, source: str, work: Path) -> list[tuple[int, int]]:
    """Build ``source`` with the Makefile's flags, trace it under qemu and time its rdcycle windows."""
    src, binary, trace = work / f"{name}.c", work / name, work / f"{name}.log"
    src.write_text(source)
    subprocess.run(["riscv64-unknown-elf-gcc", *CFLAGS, f"-I{work}", f"-I{work / 'include'}", f"-I{work / 'stub'}",
                    str(src), str(work / "rt.c"), "-o", str(binary), "-lgcc"], check=True)  # fmt: skip
    subprocess.run(["qemu-riscv64", "-singlestep", "-d", "exec,nochain", "-D", str(trace), str(binary)], check=True)
    return rocket_cycles(binary, trace)


def _fit(X: list[tuple[float, ...]], y: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and relative residuals."""
    X_, y_ = np.array(X, dtype=float), np.array(y, dtype=float)
    coef, *_ = np.linalg.lstsq(X_, y_, rcond=None)
    return coef, (X_ @ coef - y_) / y_


def measure(kind: str, grt: Path, n: int, seed: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fitted (intercept, per tile, per loop step) cycles and the relative residuals for ``kind``."""
    layers = _layers(kind, n, random.Random(seed))
    text = (grt / "gemmini-data-collection" / "templates" / f"{kind}_tilings.c").read_text()
    for key in set(re.findall(r"%([A-Z_]+)%", text)) - {"NUM_LAYERS", "PE_DIM", "PRINT_TILE"}:
        text = text.replace(f"%{key}%", ",".join(str(layer.get(key, 1)) for layer in layers))
    text = text.replace("%NUM_LAYERS%", str(n)).replace("%PE_DIM%", "16").replace("%PRINT_TILE%", "0")
    windows = _timed_windows(kind, text, work)
    # per layer: the auto run's window, an inner read_cycle_gemminih window, then the mapped call's
    y, X = [], []
    for i, layer in enumerate(layers):
        tiles, steps = _loop_steps(layer["PERM_STR"].strip('"'), _trips(kind, layer))
        y.append(windows[3 * i + 2][1])
        X.append((1.0, tiles, steps))
    return _fit(X, y)


SEARCH_DRIVER = """#include "include/gemmini_testutils.h"
static elem_t in[1], w[1], out[1];
volatile int V[%(n)d][6] = {%(rows)s};
int main(void) {
  for (int l = 0; l < %(n)d; l++) {
    int C = V[l][0], K = V[l][1], out_dim = V[l][2], R = V[l][3], stride = V[l][4], pad = V[l][5];
    int in_dim = (out_dim - 1) * stride + R - 2 * pad;
    uint64_t start = read_cycles();
    tiled_conv_auto_inner(1, in_dim, C, K, out_dim, stride, 1, 1, pad, R, false, false, false, false, false,
                          in, w, NULL, out, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0, 0, 0, WS, true);
    uint64_t end = read_cycles();
  }
  return 0;
}
"""


def measure_search(n: int, seed: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Fitted (intercept, per shrink check, per grow check) host cycles of ``tiled_conv_auto``'s tile
    search (``print_tile = true``: the search alone) against the checks gemmap's replica counts
    (:func:`gemmap.conv_tiler.tiled_conv_auto_search`, on the sizes of the stock ``gemmini_params.h``)."""
    from gemmap.arch import load_arch
    from gemmap.conv import ConvShape
    from gemmap.conv_tiler import tiled_conv_auto_search

    arch = load_arch(HERE.parents[1] / "gemmap" / "data" / "arch" / "gemmini-firesim.yaml").tiler_view()
    rng = random.Random(seed)
    layers = []
    for _ in range(n):
        R, stride = rng.choice([1, 3]), rng.choice([1, 1, 2])
        layers.append(
            (
                rng.choice([3, 16, 64, 256, 1024]),
                rng.choice([16, 64, 256, 512]),
                rng.choice([7, 14, 28, 56, 112]),
                R,
                stride,
                R // 2,
            )
        )
    rows = ", ".join("{" + ", ".join(map(str, x)) + "}" for x in layers)
    windows = _timed_windows("search", SEARCH_DRIVER % {"n": n, "rows": rows}, work)
    X, y = [], []
    for (C, K, out_dim, R, stride, pad), (_, cycles) in zip(layers, windows):
        in_dim = (out_dim - 1) * stride + R - 2 * pad
        shape = ConvShape(
            n=1, k=K, c=C, p=out_dim, q=out_dim, r=R, s=R, stride=stride, padding=pad, dilation=1, h=in_dim, w=in_dim
        )
        found = tiled_conv_auto_search(arch, shape)
        X.append((1.0, found.shrink_checks, found.grow_checks))
        y.append(cycles)
    return _fit(X, y)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grt", type=Path, required=True, help="gemmini-rocc-tests checkout at 959b23f7")
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)
    for tool in ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-objdump", "qemu-riscv64"):
        if shutil.which(tool) is None:
            print(f"count_host_issue: {tool} is not installed", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(HERE / "runtime", work, dirs_exist_ok=True)
        (work / "include").mkdir(exist_ok=True)
        for name in ("gemmini.h", "gemmini_params.h", "gemmini_counter.h"):
            shutil.copy(args.grt / "include" / name, work / "include" / name)
        shutil.copy(HERE / "runtime" / "gemmini_testutils.h", work / "include" / "gemmini_testutils.h")
        for kind in ("matmul", "conv"):
            coef, res = measure(kind, args.grt, args.layers, args.seed + (kind == "conv"), work)
            print(f"{kind}: {coef[1]:.1f} cycles per tile + {coef[2]:.1f} per loop step (intercept {coef[0]:.0f}); "
                  f"|residual| median {np.median(abs(res)):.1%}, max {abs(res).max():.1%} over {args.layers} layers")  # fmt: skip
        coef, res = measure_search(args.layers, args.seed + 2, work)
        print(f"tiled_conv_auto search: {coef[1]:.1f} cycles per shrink check + {coef[2]:.1f} per grow check "
              f"(intercept {coef[0]:.0f}); |residual| median {np.median(abs(res)):.1%}, max {abs(res).max():.1%}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
