"""The strata every result is broken down by, declared once: lesion size bins (equivalent-sphere
radius, mm), the early-tumor threshold and the patient age groups. The evaluation (benchmark/),
the dataset summary and the report (reports/) all read them from here."""
from __future__ import annotations

import math

# (name, low, high): left-closed radius bins in mm, after the DiffTumor supplement's Fig 10
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("0-5", 0.0, 5.0), ("5-10", 5.0, 10.0), ("10-15", 10.0, 15.0), ("15-20", 15.0, 20.0),
    ("20+", 20.0, math.inf),
)
SIZE_BIN_NAMES: tuple[str, ...] = tuple(name for name, _, _ in SIZE_BINS)
EARLY_RADIUS_MM = 10.0  # early tumor: radius <= 10 mm (diameter <= 2 cm)

# (name, low, high): left-closed age intervals in years; None = open end
AGE_GROUPS: tuple[tuple[str, float | None, float | None], ...] = (
    ("<50", None, 50), ("50-59", 50, 60), ("60-69", 60, 70), ("70+", 70, None),
)
AGE_GROUP_NAMES: tuple[str, ...] = tuple(name for name, _, _ in AGE_GROUPS)
SEXES = ("M", "F")  # cases.csv values; anything else is unknown


def size_bin(radius_mm: float) -> str:
    """Name of the radius bin ("0-5" ... "20+") holding ``radius_mm`` (left-closed bins)."""
    for name, low, high in SIZE_BINS:
        if low <= radius_mm < high:
            return name
    raise ValueError(f"radius must be >= 0, got {radius_mm}")


def is_early(radius_mm: float) -> bool:
    """Early tumor: equivalent radius <= 10 mm."""
    return radius_mm <= EARLY_RADIUS_MM


def sex_or_none(sex) -> str | None:
    """``sex`` when it is one of :data:`SEXES`, else None (unknown)."""
    return sex if isinstance(sex, str) and sex in SEXES else None


def age_group(age) -> str | None:
    """"<50", "50-59", "60-69", "70+"; None for an unknown age (None, NaN, not a number)."""
    try:
        age = float(age)
    except (TypeError, ValueError):
        return None
    if math.isnan(age):
        return None
    for name, low, high in AGE_GROUPS:
        if (low is None or age >= low) and (high is None or age < high):
            return name
    return None  # unreachable: the groups cover every number
