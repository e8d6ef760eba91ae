"""User-facing errors: one line saying what is wrong and where (the CLI exits 2 on these).

Any value the user gave that a message repeats goes through :func:`shown`: control characters
(a newline in a key, a path or a flag) are escaped and a long value is cut to :data:`SHOWN_CHARS`,
so a message is always one short line whatever the input.
"""

from __future__ import annotations

import difflib
import reprlib
import sys
from collections.abc import Iterable

#: a user value repeated in a message is cut to about this many characters
SHOWN_CHARS = 80

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = SHOWN_CHARS
_REPR.maxlevel = 2


class GemmapError(Exception):
    """An error in the user's input or request, reported as one line without a traceback."""


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with control characters escaped (``\\n`` shown as the two characters), cut to
    ``limit`` characters by an ellipsis in the middle (so a long path keeps its file name)."""
    if limit is not None and len(text) > 8 * limit:  # escape only what can be shown
        text = text[: 4 * limit] + text[-4 * limit :]
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit is not None and len(out) > limit:
        head = limit // 3
        out = out[:head] + "…" + out[len(out) - (limit - head - 1) :]
    return out


def shown(value: object) -> str:
    """A user value as a message repeats it: escaped, at most :data:`SHOWN_CHARS` characters
    (strings as given, other values by a bounded repr)."""
    text = value if isinstance(value, str) else _REPR.repr(value)
    return one_line(text, SHOWN_CHARS)


_WARNED: set[str] = set()
#: warnings held while a command runs (None: printed at once)
_HELD: list[str] | None = None


def warn(message: str) -> None:
    """``gemmap: warning: message`` on stderr as one line, once per distinct message; while a
    command runs (:func:`hold_warnings`) it waits for the command's outcome."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    line = f"gemmap: warning: {one_line(message, 400)}"
    if _HELD is not None:
        _HELD.append(line)
    else:
        print(line, file=sys.stderr, flush=True)


def hold_warnings() -> None:
    """Hold warnings until :func:`release_warnings`: a command that then fails on bad input says
    only its one error line."""
    global _HELD
    _HELD = []


def release_warnings(show: bool) -> None:
    """Print the held warnings (``show``: the command finished or was interrupted) or drop them
    (it failed on bad input), and print warnings at once from now on."""
    global _HELD
    held, _HELD = _HELD or [], None
    for line in held if show else ():
        print(line, file=sys.stderr, flush=True)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix naming the closest choice, or '' if none is close."""
    if len(word) > SHOWN_CHARS:
        return ""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a GemmapError with a suggestion."""
    options = list(choices)
    if value not in options:
        raise GemmapError(
            f"unknown {what} '{shown(value)}'{did_you_mean(value, options)}; choose from {', '.join(options)}"
        )
    return value
