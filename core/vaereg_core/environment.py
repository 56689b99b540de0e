"""Settings read from environment variables (limits a user raises without a command-line option)."""

from __future__ import annotations

import math
import os


def positive_number(name: str, unit: str) -> float | None:
    """The positive, finite number in environment variable ``name``; None when it is not set.

    Raises
    ------
    ValueError
        The variable is set (even to nothing) but is not a positive number; the
        message names the variable and ``unit``.

    Examples
    --------
    >>> os.environ["VAEREG_EXAMPLE"] = "4e9"
    >>> positive_number("VAEREG_EXAMPLE", "bytes")
    4000000000.0
    >>> os.environ["VAEREG_EXAMPLE"] = "-1"
    >>> positive_number("VAEREG_EXAMPLE", "bytes")
    Traceback (most recent call last):
    ValueError: VAEREG_EXAMPLE='-1' is not a positive number of bytes
    >>> del os.environ["VAEREG_EXAMPLE"]
    >>> positive_number("VAEREG_EXAMPLE", "bytes") is None
    True
    """
    text = os.environ.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={text!r} is not a positive number of {unit}")
    return value
