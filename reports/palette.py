"""One place for regime colours, display names and number formatting (used by tables and plots)."""
from __future__ import annotations

import math
from typing import Any

REGIMES = ("real", "hu", "difftumor")
REGIME_LABELS = {"real": "Real tumors", "hu": "Hu et al. synthetic", "difftumor": "DiffTumor synthetic"}
# Colour-blind safe (Okabe-Ito): real = blue, Hu = orange, DiffTumor = bluish green.
REGIME_COLORS = {"real": "#0072B2", "hu": "#E69F00", "difftumor": "#009E73"}
FALLBACK_COLORS = ("#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
ORGANS = ("liver", "pancreas", "kidney")
BACKBONE_LABELS = {"unet": "U-Net", "nnunet": "nnU-Net", "swin_unetr": "Swin UNETR"}
GT_COLOR = "#FF2D2D"
MISSING = "—"


def regime_color(regime: str) -> str:
    """Colour for a regime; unknown regimes get a stable colour from the fallback list."""
    if regime in REGIME_COLORS:
        return REGIME_COLORS[regime]
    return FALLBACK_COLORS[sum(map(ord, regime)) % len(FALLBACK_COLORS)]


def regime_label(regime: str) -> str:
    return REGIME_LABELS.get(regime, regime)


def backbone_label(backbone: str) -> str:
    return BACKBONE_LABELS.get(backbone, backbone)


def sort_regimes(regimes) -> list[str]:
    """Paper order first (real, hu, difftumor), then any others alphabetically."""
    known = [r for r in REGIMES if r in regimes]
    return known + sorted(set(regimes) - set(REGIMES))


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
    if value is None or any(is_missing(v) for v in value):
        return MISSING
    return f"[{value[0]:+.1f}, {value[1]:+.1f}]"


FORMATTERS = {"pct": fmt_pct, "signed": fmt_signed, "p": fmt_p, "int": fmt_int, "ci": fmt_ci,
              "text": lambda v: MISSING if is_missing(v) else str(v)}


def format_value(value: Any, fmt: str) -> str:
    return FORMATTERS[fmt](value)
