"""The ``gemmap`` command line: a thin layer over the Python API (DESIGN §8).

Each sub-command lives in its own module with ``add_parser(subparsers)`` and ``run(args)``.
Errors in the user's input print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from gemmap import __version__
from gemmap.cli import calibrate, cdf, deploy, evaluate, export, importer, listing, pipeline, schedule, sweep, validate
from gemmap.cli import map as map_cmd
from gemmap.errors import GemmapError, did_you_mean, hold_warnings, one_line, release_warnings, shown

COMMANDS = (map_cmd, cdf, sweep, schedule, evaluate, validate, calibrate, importer, export, pipeline, deploy, listing)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``gemmap <cmd>: error: …`` on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            message += did_you_mean(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)))
        message = _shorten_values(message)
        self.exit(2, f"{self.prog}: error: {one_line(message, MAX_MESSAGE)} (see '{self.prog} --help')\n")


#: the longest error line printed (user values in it are already cut to ~80 characters each)
MAX_MESSAGE = 600


def _shorten_values(message: str) -> str:
    """argparse quotes the user's values as '...': cut each to ~80 characters, escaped."""
    return re.sub(r"'([^']*)'", lambda m: f"'{shown(m.group(1))}'", message, flags=re.S)


def _report(message: str) -> None:
    print(f"gemmap: error: {one_line(message, MAX_MESSAGE)}", file=sys.stderr)


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="gemmap",
        description="Mapping and scheduling simulator for Gemmini-like systolic-array accelerators.",
        epilog="examples:\n  gemmap map workloads/bert.yaml\n  gemmap cdf workloads/bert.yaml --out out/cdf\n"
        "  gemmap sweep workloads/bert.yaml --spad-kib 64,256 --acc-kib 64,256 --out out/sweep\n"
        "  gemmap schedule workloads/bert.yaml --arch arch/gemmini-transformer.yaml\n"
        "  gemmap import hf config.json -o workloads/my-model.yaml\n"
        "  gemmap export timeloop workloads/bert.yaml --out out/timeloop\n"
        "  gemmap pipeline bert --arch gemmini-32x32 --arch gemmini-transformer\n"
        "  gemmap deploy llama2-7b --phase decode --dram-mib 2048 --storage-mb-per-s 250 --search heuristic",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gemmap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # bare `gemmap`: what it can do, not an error
        return 0
    args = parser.parse_args(argv)
    hold_warnings()  # a run that fails on bad input prints its one error line and nothing else
    # `--json -`: the record alone on standard output, the tables and messages on standard error
    tables_to_stderr = getattr(args, "json", None) == "-"
    try:
        with contextlib.redirect_stdout(sys.stderr) if tables_to_stderr else contextlib.nullcontext():
            status = int(args.run(args) or 0)
    except GemmapError as exc:
        release_warnings(show=False)
        _report(str(exc))
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped (e.g. head): quiet, like cat
        release_warnings(show=False)
        _quiet_stdout()
        return 0
    except OSError as exc:  # a path the user gave: a directory, an unwritable or missing place
        release_warnings(show=False)
        where = f" {shown(str(exc.filename))}" if exc.filename else ""
        _report(f"cannot use{where}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        release_warnings(show=True)
        print(f"gemmap: interrupted; {_after_interrupt(args, sys.argv[1:] if argv is None else argv)}", file=sys.stderr)
        return 130
    except BaseException:
        release_warnings(show=True)
        raise
    release_warnings(show=True)
    return status


def _after_interrupt(args: argparse.Namespace, argv: list[str]) -> str:
    """What an interrupted run leaves: a sweep's finished points and the command that resumes it."""
    again = [a for a in argv if a not in ("--resume", "--overwrite")]
    if args.command == "calibrate":
        from gemmap.validation.journal import journal_path

        kept = journal_path(Path(args.out))
        if not kept.exists():
            return "nothing was written"
        return (
            f"the parameter points predicted so far are in {kept}; continue with: gemmap {shlex.join(again)} --resume"
        )
    if args.command != "sweep":
        return "nothing was written"
    return f"the finished points are in {args.out}/sweep.csv; continue with: gemmap {shlex.join(again)} --resume"


def entry() -> NoReturn:
    """The ``gemmap`` console script: :func:`main`, then exit with its status. After an interrupt it
    leaves at once: every finished result is already on disk (fsync-ed), and a normal interpreter
    exit would run concurrent.futures' exit hook, which may write to the pipes of workers just killed."""
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    sys.stderr.flush()
    if status == 130:
        os._exit(130)
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    entry()
