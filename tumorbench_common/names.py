"""Names that become folder names and MLflow filter values (grid, case, study names): one check.

A name with a path separator, or ``.``/``..`` as the whole name, could write outside the results folder; a quote or
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
    if _FORBIDDEN.search(value) or value.strip(".") == "":  # no separator: ".." can only be the whole name
        raise InputError(f"{what}: {value!r} is not a safe name (no '/', '\\', quotes, backticks, control "
                         "characters, not only dots: it becomes a folder name and an MLflow filter value)")
    return value
