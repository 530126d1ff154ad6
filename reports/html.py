"""Render the report sections into one self-contained index.html (inline CSS/JS, PNGs beside it)."""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.palette import MISSING, is_missing, regime_colors, regime_label, sort_regimes
from reports.plots import Figure
from reports.table_model import ReportTable

TEMPLATES = Path(__file__).resolve().parent / "templates"

PROVENANCE_HTML = """
<h3>Grid</h3>
<p class="caption">Experiment <a href="{{ p.experiment_url }}">{{ p.experiment }}</a> (id {{ p.experiment_id }}),
tracking URI <code>{{ p.tracking_uri }}</code>; cells ran {{ p.first_start }} → {{ p.last_end }}.</p>
<p class="caption">Git commit(s): {% for c in p.commits %}<code>{{ c }}</code> {% endfor %}· device(s): {{ p.devices|join(", ") }}</p>
{% for g in grid_files %}
<p class="caption">Parent run <a href="{{ g.url }}">{{ g.name }}</a> ({{ g.status }}, started {{ g.started }}, {{ g.duration }}) — <code>runs:/{{ g.run_id }}</code>, grid.toml:</p>
<pre>{{ g.text or "grid.toml artifact not found" }}</pre>
{% endfor %}
{% if p.versions %}<h3>Versions logged with the runs</h3><table class="tb"><caption>Version tags and params of the runs</caption><tr><th scope="col">key</th><th scope="col">values</th></tr>
{% for k, v in p.versions.items() %}<tr><td>{{ k }}</td><td>{{ v|join(", ") }}</td></tr>{% endfor %}</table>{% endif %}
<h3>Report environment</h3><table class="tb"><caption>Machine that rendered this report</caption><tr>{% for k in p.environment %}<th scope="col">{{ k }}</th>{% endfor %}</tr>
<tr>{% for v in p.environment.values() %}<td>{{ v }}</td>{% endfor %}</tr></table>
<h3>Cells</h3><div class="scroll"><table class="tb sortable"><caption>One row per finished cell run</caption><thead><tr><th>cell</th><th>run (MLflow UI)</th><th>URI</th><th>git commit</th>
<th>device</th><th>preset</th><th>cell hash</th><th>started</th><th>duration</th></tr></thead><tbody>
{% for c in p.cells %}<tr><td data-sort="{{ c.cell }}">{{ c.cell }}</td><td data-sort="{{ c.run_id }}"><a href="{{ c.url }}">{{ c.run_id[:12] }}</a></td>
<td data-sort="{{ c.runs_uri }}"><code>{{ c.runs_uri }}</code></td><td data-sort="{{ c.git_commit }}">{{ c.git_commit[:12] }}</td>
<td data-sort="{{ c.device }}">{{ c.device }}</td><td data-sort="{{ c.preset }}">{{ c.preset }}</td><td data-sort="{{ c.cell_hash }}">{{ c.cell_hash }}</td>
<td data-sort="{{ c.started }}">{{ c.started }}</td><td data-sort="{{ c.duration }}">{{ c.duration }}</td></tr>{% endfor %}
</tbody></table></div>
{% if unfinished %}<div class="note">Cells without a finished run:<ul>{% for u in unfinished %}<li>{{ u }}</li>{% endfor %}</ul></div>{% endif %}
"""

REALISM_HTML = """
{% for name, rows in csv_tables %}<h3>{{ name }}</h3><div class="scroll"><table class="tb sortable"><caption>{{ name }}</caption>
<thead><tr>{% for h in rows[0] %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for r in rows[1:] %}<tr>{% for v in r %}<td data-sort="{{ v }}">{{ v }}</td>{% endfor %}</tr>{% endfor %}</tbody></table></div>{% endfor %}
"""


@dataclass
class Section:
    id: str
    nav: str
    title: str
    intro: str = ""
    tables: list[ReportTable] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    html: str = ""


def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                              autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)


def table_context(table: ReportTable) -> dict[str, Any]:
    cells = []
    for raw, text, sort in zip(table.rows, table.formatted(), table.sort_keys()):
        cells.append([{"text": t, "sort": s, "cls": c.kind + (" missing" if t == MISSING else "")}
                      for t, s, c in zip(text, sort, table.columns)])
    return {"key": table.key, "title": table.title, "caption": table.caption, "columns": table.columns,
            "cells": cells, "notes": table.notes, "missing": table.missing}


def provenance_html(prov: dict, grid_files: list[dict], unfinished: list[str]) -> str:
    return _env().from_string(PROVENANCE_HTML).render(p=prov, grid_files=grid_files, unfinished=unfinished)


def realism_html(csv_paths: list[Path]) -> str:
    tables = []
    for path in csv_paths:
        with open(path, newline="") as handle:
            rows = [r for r in csv.reader(handle)]
        if rows:
            tables.append((path.name, [[_short(v) for v in r] for r in rows]))
    return _env().from_string(REALISM_HTML).render(csv_tables=tables)


def _short(value: str) -> str:
    """Numbers from another tool's CSV to 4 significant digits, text unchanged."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if is_missing(number) or number == int(number) else f"{number:.4g}"


def render_index(out_dir: Path, sections: list[Section], prov: dict, n_cells: int, regimes=()) -> Path:
    """Write ``out_dir/index.html``; figure paths become relative links; ``regimes`` make the legend."""
    from tumorbench_common.io import write_text_atomic

    ctx_sections = []
    for s in sections:
        figures = [{"src": f.path.relative_to(out_dir).as_posix(), "title": f.title, "caption": f.caption}
                   for f in s.figures]
        ctx_sections.append({"id": s.id, "nav": s.nav, "title": s.title, "intro": s.intro, "notes": s.notes,
                             "tables": [table_context(t) for t in s.tables], "figures": figures, "html": s.html})
    colors = regime_colors(regimes)
    palette = [(regime_label(r), colors[r]) for r in sort_regimes(regimes)]
    html = _env().get_template("report.html.j2").render(
        sections=ctx_sections, prov=prov, n_cells=n_cells, palette=palette,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    path = out_dir / "index.html"
    write_text_atomic(path, html)
    return path
