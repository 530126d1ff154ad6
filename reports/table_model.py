"""A small table model shared by every report section, with CSV and LaTeX writers.

Values are stored raw (percent floats, ints, strings, (low, high) tuples, None for missing);
formatting happens once, in ``ReportTable.formatted`` (HTML and LaTeX) so every output agrees.
Columns of kind ``pub`` hold published paper values and are never mixed with ours.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.palette import MISSING, format_value, is_missing

KINDS = ("key", "ours", "pub", "stat")


@dataclass(frozen=True)
class Column:
    """A table column. kind: key (row label) | ours | pub (published) | stat; fmt: see palette."""

    name: str
    kind: str = "ours"
    fmt: str = "pct"


@dataclass
class ReportTable:
    key: str  # file stem for tables/<key>.csv / .tex and the HTML anchor
    title: str
    caption: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # which of our cells are missing and why

    def formatted(self) -> list[list[str]]:
        return [[format_value(v, c.fmt) for v, c in zip(row, self.columns)] for row in self.rows]

    def sort_keys(self) -> list[list[str]]:
        """Per-cell sort key for the HTML (numbers as plain text, missing sorts last)."""
        out = []
        for row in self.rows:
            keys = []
            for value, col in zip(row, self.columns):
                if is_missing(value) or (isinstance(value, tuple) and any(is_missing(v) for v in value)):
                    keys.append("")
                elif isinstance(value, tuple):
                    keys.append(repr(float(value[0])))
                elif isinstance(value, (int, float)) and not isinstance(value, bool):
                    keys.append(repr(float(value)))
                else:
                    keys.append(str(value))
            out.append(keys)
        return out

    def csv_text(self) -> str:
        """Raw values (full precision, percent units); intervals split into ``_lo``/``_hi`` columns,
        counts into ``_k``/``_n``."""
        header: list[str] = []
        for col in self.columns:
            header += [f"{col.name}{s}" for s in _SUFFIXES[col.fmt]] if col.fmt in _SUFFIXES else [col.name]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in self.rows:
            out: list[Any] = []
            for value, col in zip(row, self.columns):
                parts = list(value) if col.fmt in _SUFFIXES and value is not None else (
                    [None, None] if col.fmt in _SUFFIXES else [value])
                out += ["" if is_missing(v) else v for v in parts]
            writer.writerow(out)
        return buf.getvalue()

    def latex_text(self) -> str:
        """A ``table`` float: caption (title, test definitions), booktabs tabular with the same formatted
        numbers as the HTML (published columns in italics), then the notes (e.g. the Holm families)
        as text under it; missing cells as comments."""
        spec = "".join("l" if c.kind == "key" else "r" for c in self.columns)
        head = " & ".join(_tex(c.name) for c in self.columns)
        lines = [r"\begin{table}[htbp]", r"\centering", r"\caption{%s. %s}" % (_tex(self.title), _tex(self.caption)),
                 r"\label{tab:%s}" % self.key.replace("_", "-"),
                 r"\begin{tabular}{" + spec + "}", r"\toprule", head + r" \\", r"\midrule"]
        for row in self.formatted():
            cells = [(r"\textit{%s}" % _tex(v)) if c.kind == "pub" and v != MISSING else _tex(v)
                     for v, c in zip(row, self.columns)]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [r"\par\smallskip{\footnotesize %s}" % _tex(n) for n in self.notes]
        lines += [r"\end{table}"] + [f"% {_tex(n)}" for n in self.missing]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> list[Path]:
        from tumorbench_common.io import write_text_atomic

        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{self.key}.csv", folder / f"{self.key}.tex"]
        write_text_atomic(paths[0], self.csv_text())
        write_text_atomic(paths[1], self.latex_text())
        return paths


_SUFFIXES = {"ci": ("_lo", "_hi"), "range": ("_lo", "_hi"), "ratio": ("_k", "_n")}

_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}", "—": "---",
                "±": r"$\pm$", "Δ": r"$\Delta$", "·": r"$\cdot$", "−": "-", "≥": r"$\geq$", "<": r"$<$",
                "≤": r"$\leq$", "→": r"$\rightarrow$", "×": r"$\times$", "³": r"$^3$", "²": r"$^2$",
                ">": r"$>$"}


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def pct(value: float | None) -> float | None:
    """Fraction in [0, 1] (as logged in MLflow / summary.json) -> percent; missing stays None."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else 100.0 * float(value)
