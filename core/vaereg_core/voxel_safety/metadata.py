"""Metadata text stored with a structure: bounded, parsed without crashing, always a dict."""

from __future__ import annotations

import json
import os
from typing import Any

from vaereg_core.errors import CorruptVoxelFileError
from vaereg_core.voxel_safety.budget import check_metadata_size


def parse_json(path: str | os.PathLike, text: str | bytes, what: str = "metadata") -> Any:
    """Parse JSON text of at most :data:`~.budget.METADATA_MAX_BYTES`.

    Raises
    ------
    VoxelFileTooLargeError
        The text is longer than the limit.
    CorruptVoxelFileError
        Not JSON, or nested too deeply for the parser.
    """
    check_metadata_size(path, len(text))
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: "[[[[..." a million deep
        raise CorruptVoxelFileError(path, f"{what} is not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None


def as_metadata_dict(value: Any) -> dict[str, Any]:
    """Metadata as a dict: a JSON object as it is; any other JSON value (a list, a number) under ``"metadata"``.

    Every consumer (``vaereg info``, the app's provenance panel, export)
    expects ``key: value`` pairs; a foreign tool may store anything.
    """
    return value if isinstance(value, dict) else {"metadata": value}
