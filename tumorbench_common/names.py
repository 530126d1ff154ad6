"""Names that become folder names and MLflow filter values (grid, case, study names): one check.

A name with a path separator or ``..`` could write outside the results folder; a quote or
backtick would break (or change) an MLflow ``filter_string``. Such names are refused, not escaped,
so that a name means the same thing in a folder, a tag and a filter.
"""
from __future__ import annotations

import re

from tumorbench_common.errors import InputError

_FORBIDDEN = re.compile(r"[/\\'\"`\x00-\x1f]")


def check_name(value: object, what: str) -> str:
    """``value`` if it is a safe name, else InputError naming ``what`` (file and field)."""
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what}: expected a non-empty name, got {value!r}")
    if _FORBIDDEN.search(value) or value.strip(".") == "" or ".." in value:
        raise InputError(f"{what}: {value!r} is not a safe name (no '/', '\\', '..', quotes, backticks "
                         "or control characters: it becomes a folder name and an MLflow filter value)")
    return value
