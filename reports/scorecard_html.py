"""Static HTML of generator scorecards: one card per generator and organ, one leaderboard page.

Reads only the scorecard dicts (``scorecard.json``) and each card's ``fidelity.csv``; pages use the
report's style and sortable tables (templates/_style.css.j2, _sortable.js.j2), link their PNGs
relatively and work from file://.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Sequence

from reports.html import _env
from reports.palette import MISSING, fmt_p, is_missing, regime_colors, sort_regimes

SCORE_KEYS = ("c2st_auc", "frechet_pca")
LEADERBOARD_HEADER = ["generator", "organ", "status", "C2ST AUC matched vs floor", "Fréchet PCA matched vs floor",
                      "fidelity tests differing", "max |Cliff's δ|", "time vs Hu", "peak MB", "replay", "Δ DSC [95% CI]",
                      "card"]


def _num(value: Any, digits: int = 3) -> str:
    """Fixed decimals; 3 significant digits from 10^4 on (a Frechet distance can be huge at small n)."""
    if is_missing(value):
        return MISSING
    return f"{float(value):.3g}" if abs(float(value)) >= 1e4 else f"{float(value):.{digits}f}"


def _cell(text: Any, sort: Any = None, cls: str = "stat") -> dict[str, str]:
    sort = text if sort is None else sort
    return {"text": str(text), "sort": "" if is_missing(sort) else str(sort), "cls": cls, "href": ""}


def _pm(mean: Any, sd: Any) -> str:
    return MISSING if is_missing(mean) else f"{_num(mean)} ± {_num(sd)}"


def realism_rows(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    out = []
    for r in rows:
        cells = [_cell(r.get("size_bin", "all"), cls="key"), _cell(f"{r.get('n_real')} / {r.get('n_other')}",
                                                                   r.get("n_other"))]
        if r.get("skipped"):
            out.append(cells + [_cell(r["skipped"], "", "missing")] + [_cell(MISSING, "", "missing")] * 4)
            continue
        cells.append(_cell(r.get("n_matched"), r.get("n_matched")))
        for key in SCORE_KEYS:
            cells += [_cell(f"{_num(r.get(key))} (p {fmt_p(r.get(key + '_p'))})", r.get(key)),
                      _cell(f"{_pm(r.get(key + '_matched'), r.get(key + '_matched_sd'))} vs "
                            f"{_pm(r.get(key + '_floor'), r.get(key + '_floor_sd'))}", r.get(key + "_matched"))]
        out.append(cells)
    return out


def _iqr(summary: dict[str, Any]) -> str:
    return MISSING if is_missing(summary.get("median")) else \
        f"{_num(summary['median'], 2)} [{_num(summary['q1'], 2)}, {_num(summary['q3'], 2)}]"


def fidelity_rows(tests: Sequence[dict[str, Any]]) -> list[list[dict[str, str]]]:
    return [[_cell(t["label"] + (f" ({t['unit']})" if t["unit"] else ""), cls="key"),
             _cell(t["real"]["n"]), _cell(_iqr(t["real"]), t["real"]["median"]),
             _cell(t["generator"]["n"]), _cell(_iqr(t["generator"]), t["generator"]["median"]),
             _cell(_num(t["cliffs_delta"], 2), t["cliffs_delta"]), _cell(fmt_p(t["p"]), t["p"]),
             _cell(fmt_p(t["p_holm"]), t["p_holm"])] for t in tests]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return _num(value)
    return value if isinstance(value, str) else json.dumps(value, default=str)[:300]


CARD_FIELDS = ("generator", "organ", "seed", "quick", "timing", "refusals")  # shown elsewhere on the card


def _ok(value: Any) -> bool | None:
    """A check's verdict: its own ``ok``, else all of its parts' (e.g. consistency per spacing)."""
    if not isinstance(value, dict):
        return None
    if "ok" in value:
        return bool(value["ok"])
    parts = [v["ok"] for v in value.values() if isinstance(v, dict) and "ok" in v]
    return all(parts) if parts else None


def timing_columns(eng: dict[str, Any]) -> list[str]:
    """"size bin" and the union of the bins' keys in first-seen order (a failed bin has ``error``)."""
    columns: list[str] = []
    for values in (eng.get("timing") or {}).values():
        columns += [k for k in (values if isinstance(values, dict) else {}) if k not in columns]
    return ["size bin"] + columns


def engineering_rows(eng: dict[str, Any]) -> tuple[list[list[dict[str, str]]], list[list[dict[str, str]]]]:
    """(timing rows per size bin under ``timing_columns``, one row per other entry: name, ok, details)."""
    columns = timing_columns(eng)[1:]
    timing = [[_cell(size, cls="key")] + [_cell(_short(values.get(c, MISSING)), values.get(c) if isinstance(
        values.get(c), (int, float)) else None) for c in columns]
              for size, values in (eng.get("timing") or {}).items() if isinstance(values, dict)]
    checks = []
    for name, value in eng.items():
        if name in CARD_FIELDS:
            continue
        ok = _ok(value)
        detail = {k: v for k, v in value.items() if k != "ok"} if isinstance(value, dict) else value
        checks.append([_cell(name, cls="key"), _cell(MISSING if ok is None else ("yes" if ok else "NO"),
                                                    "" if ok is None else int(ok)),
                       _cell(_short(detail), "", "text")])
    return timing, checks


def _render(template: str, path: Path, **context: Any) -> Path:
    from tumorbench_common.io import write_text_atomic

    html = _env().get_template(template).render(
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **context)
    write_text_atomic(path, html)
    return path


def write_card(card: dict[str, Any], card_dir: Path) -> Path:
    """``card_dir/card.html`` (and ``img/fidelity.png`` for a scored card)."""
    import pandas as pd

    from reports.scorecard_plots import fidelity_figure

    figure = None
    if card["status"] == "scored" and card["fidelity"]["tests"]:
        frame = pd.read_csv(card_dir / "fidelity.csv", dtype={"case": str})
        fidelity_figure(frame, card["fidelity"]["tests"], card["generator"], card_dir / "img" / "fidelity.png")
        figure = "img/fidelity.png"
    timing, checks = engineering_rows(card.get("engineering") or {})
    return _render("scorecard.html.j2", card_dir / "card.html", c=card, figure=figure,
                   realism=realism_rows(card.get("realism") or []),
                   fidelity=fidelity_rows((card.get("fidelity") or {}).get("tests") or []),
                   timing=timing, timing_columns=timing_columns(card.get("engineering") or {}), checks=checks,
                   color=regime_colors([card["generator"]])[card["generator"]])


def leaderboard_rows(cards: Sequence[dict[str, Any]], prefix: str = "") -> list[list[dict[str, str]]]:
    """One row per card (LEADERBOARD_HEADER), the last cell linking ``prefix<generator>/<organ>/card.html``."""
    order = {g: i for i, g in enumerate(sort_regimes({c["generator"] for c in cards}))}
    rows = []
    for c in sorted(cards, key=lambda c: (order[c["generator"]], c["organ"])):
        link = f'{prefix}{c["generator"]}/{c["organ"]}/card.html'
        h = c.get("headline") or {}
        cells = [_cell(c["generator"], cls="key"), _cell(c["organ"], cls="key"),
                 _cell("REFUSED" if c["status"] == "refused" else "scored", cls="text")]
        if c["status"] == "refused":
            cells += [_cell("; ".join(c["refusals"]), "", "text refused")] + [_cell(MISSING, "", "missing")] * 7
        else:
            excess = None if is_missing(h.get("c2st_auc_matched")) or is_missing(h.get("c2st_auc_floor")) \
                else h["c2st_auc_matched"] - h["c2st_auc_floor"]
            cells += [_cell(f"{_num(h.get('c2st_auc_matched'))} vs {_num(h.get('c2st_auc_floor'))}", excess),
                      _cell(f"{_num(h.get('frechet_pca_matched'))} vs {_num(h.get('frechet_pca_floor'))}",
                            h.get("frechet_pca_matched")),
                      _cell(f"{h.get('fidelity_differs')}/{h.get('fidelity_tests')}", h.get("fidelity_differs")),
                      _cell(_num(h.get("max_abs_cliffs_delta"), 2), h.get("max_abs_cliffs_delta")),
                      _cell(_num(h.get("time_ratio_vs_hu"), 2), h.get("time_ratio_vs_hu")),
                      _cell(_num(h.get("peak_memory_mb"), 0), h.get("peak_memory_mb")),
                      _cell(MISSING if h.get("replay_ok") is None else ("yes" if h["replay_ok"] else "NO"),
                            "" if h.get("replay_ok") is None else int(h["replay_ok"])),
                      _cell(MISSING if is_missing(h.get("delta_dsc")) else
                            f"{h['delta_dsc']:+.1f} [{h['delta_dsc_ci'][0]:+.1f}, {h['delta_dsc_ci'][1]:+.1f}]"
                            if h.get("delta_dsc_ci") and None not in h["delta_dsc_ci"] else f"{h['delta_dsc']:+.1f}",
                            h.get("delta_dsc"))]
        rows.append(cells + [{"text": "card", "sort": link, "cls": "text", "href": link}])
    return rows


def write_leaderboard(cards: Sequence[dict[str, Any]], out: Path) -> Path:
    """``out/leaderboard.html``: every card side by side (links to ``<generator>/<organ>/card.html``)."""
    generators = sort_regimes({c["generator"] for c in cards})
    colors = regime_colors(generators)
    return _render("leaderboard.html.j2", out / "leaderboard.html", rows=leaderboard_rows(cards),
                   header=LEADERBOARD_HEADER, palette=[(g, colors[g]) for g in generators], cards=cards)


def leaderboard_table(cards: Sequence[dict[str, Any]], prefix: str, caption: str) -> str:
    """The leaderboard table alone (for the grid report's scorecard section), links under ``prefix``."""
    return _env().get_template("_scorecard_table.j2").render(key="scorecards", caption=caption,
                                                              header=LEADERBOARD_HEADER,
                                                              rows=leaderboard_rows(cards, prefix))
