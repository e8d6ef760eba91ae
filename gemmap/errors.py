"""User-facing errors: one line saying what is wrong and where (the CLI exits 2 on these)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GemmapError(Exception):
    """An error in the user's input or request, reported as one line without a traceback."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix naming the closest choice, or '' if none is close."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_choice(value: str, choices: Iterable[str], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a GemmapError with a suggestion."""
    options = list(choices)
    if value not in options:
        raise GemmapError(f"unknown {what} '{value}'{did_you_mean(value, options)}; choose from {', '.join(options)}")
    return value
