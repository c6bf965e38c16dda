"""Argument checks shared by the package, so every module words a bad value the same way."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def require_whole_number(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer of at least ``minimum``.

    ``True`` and ``False`` are refused although Python counts them as integers:
    ``epochs=True`` is a mistake, not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}.")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1, for counts given on a command line."""
    return _whole_number_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (a seed, or a count that may be none)."""
    return _whole_number_at_least(text, 0)


def _whole_number_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least {minimum}, got {text!r}"
        )
    return value
