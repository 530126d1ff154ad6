"""One place for regime colours, display names and number formatting (every report section uses it).

Colours are assigned by position in the report's sorted regime list, never by a regime's name, so any
number of generators (built-in or plug-in) get distinct colours and the same colour in every section."""
from __future__ import annotations

import math
from typing import Any

REAL = "real"  # the baseline regime: real tumors, no generator
REGIMES = (REAL, "hu", "difftumor")  # paper order; other regimes follow alphabetically
REGIME_LABELS = {REAL: "Real tumors", "hu": "Hu et al. synthetic", "difftumor": "DiffTumor synthetic"}
# Okabe-Ito hues (colour-blind safe) darkened where needed so that every colour reaches >= 3:1 contrast
# on white (WCAG 2.1 AA, non-text contrast 1.4.11; orange #E69F00 -> #C47F00, sky blue -> #2E8BC0),
# then Paul Tol's "muted" set. The paper's three regimes get blue, orange, bluish green.
PALETTE = ("#0072B2", "#C47F00", "#009E73", "#C26E9D", "#2E8BC0", "#D55E00", "#332288", "#117733",
           "#882255", "#999933", "#AA4499", "#2F8F80", "#661100")
ORGANS = ("liver", "pancreas", "kidney")
BACKBONE_LABELS = {"unet": "U-Net", "nnunet": "nnU-Net", "swin_unetr": "Swin UNETR"}
GT_COLOR = "#FF2D2D"
MISSING = "—"


def sort_regimes(regimes) -> list[str]:
    """Paper order first (real, hu, difftumor), then any others alphabetically."""
    regimes = set(regimes)
    known = [r for r in REGIMES if r in regimes]
    return known + sorted(regimes - set(REGIMES))


def regime_colors(names) -> dict[str, str]:
    """Colour per regime name for a whole report: position in ``sort_regimes(names ∪ paper regimes)``.

    The paper's regimes are always part of the ordering so their colours do not move when a new
    generator joins; more regimes than colours cycle through the palette.
    """
    ordered = sort_regimes(set(names) | set(REGIMES))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered) if name in set(names)}


def regime_label(regime: str) -> str:
    return REGIME_LABELS.get(regime, regime)


def backbone_label(backbone: str) -> str:
    return BACKBONE_LABELS.get(backbone, backbone)


def is_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt_pct(value: Any) -> str:
    """A value already in percent, one decimal like the paper (``62.5``); missing -> ``—``."""
    return MISSING if is_missing(value) else f"{float(value):.1f}"


def fmt_signed(value: Any) -> str:
    return MISSING if is_missing(value) else f"{float(value):+.1f}"


def fmt_p(value: Any) -> str:
    if is_missing(value):
        return MISSING
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def fmt_int(value: Any) -> str:
    return MISSING if is_missing(value) else str(int(value))


def fmt_ci(value: Any) -> str:
    """A (low, high) interval of a signed quantity, e.g. a difference."""
    if value is None or any(is_missing(v) for v in value):
        return MISSING
    return f"[{value[0]:+.1f}, {value[1]:+.1f}]"


def fmt_range(value: Any) -> str:
    """A (low, high) interval of a non-negative quantity, e.g. a proportion's CI in %."""
    if value is None or any(is_missing(v) for v in value):
        return MISSING
    return f"[{value[0]:.1f}, {value[1]:.1f}]"


def fmt_ratio(value: Any) -> str:
    """A (k, n) count pair as ``k/n``."""
    if value is None or any(is_missing(v) for v in value):
        return MISSING
    k, n = value
    return f"{k:g}/{int(n)}"


FORMATTERS = {"pct": fmt_pct, "signed": fmt_signed, "p": fmt_p, "int": fmt_int, "ci": fmt_ci,
              "range": fmt_range, "ratio": fmt_ratio, "text": lambda v: MISSING if is_missing(v) else str(v)}


def format_value(value: Any, fmt: str) -> str:
    return FORMATTERS[fmt](value)
