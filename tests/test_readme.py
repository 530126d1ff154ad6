"""README.md stays a five-minute read whose links, anchors and commands are all real.

Checks: at most 250 lines; the set-up section shows exactly `make demo` and `make test`; every
relative link in README.md and docs/*.md names an existing file, and every #anchor a heading of
that file (GitHub's slugs); every docs/*.md page is in the README's documentation index; every
`tumorbench` command the README shows parses with the real CLI parser.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from benchmark.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def section(text: str, title: str) -> str:
    """The body of the `## title` section."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_readme_is_short_enough_to_read_in_five_minutes():
    n_lines = len(README.read_text().splitlines())
    assert n_lines <= 250, f"README.md has {n_lines} lines, at most 250"


def test_the_two_set_up_commands_are_the_only_ones():
    body = section(README.read_text(), "Set-up (fresh machine)")
    commands = [line.split("#")[0].strip() for line in body.splitlines() if line.startswith("    ")]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_every_docs_page_is_in_the_readme_index():
    index = section(README.read_text(), "Documentation")
    linked = {Path(t).name for t in LINK.findall(index)}
    missing = [p.name for p in DOCS if p.name not in linked]
    assert not missing, f"docs pages missing from the README's index: {missing}"


def readme_commands() -> list[str]:
    """Every `tumorbench ...` line of the README's code blocks (continuations joined, comments cut)
    and every inline `tumorbench ...` span of its prose (table rows with `a|b` alternatives aside)."""
    text = README.read_text()
    prose = "\n".join(line for line in FENCE.sub("", text).splitlines() if not line.startswith("|"))
    commands = [c for c in re.findall(r"`(tumorbench [^`]+)`", prose) if "|" not in c]
    for block in FENCE.findall(text):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("tumorbench "):
                commands.append(line)
    return commands


def test_every_command_the_readme_shows_parses():
    commands = readme_commands()
    assert len(commands) >= 8
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit as exit_:
            pytest.fail(f"README command does not parse (exit {exit_.code}): {command}")


def test_every_command_in_the_readme_table_exists(capsys):
    table = section(README.read_text(), "Commands")
    cells = re.findall(r"^\| `tumorbench ([^`]+)` \|", table, re.M)
    assert len(cells) >= 10
    for cell in cells:
        words = cell.replace("\\|", "|").split()
        for sub in words[1].split("|") if len(words) > 1 else [None]:
            argv = [words[0], *([sub] if sub else []), "--help"]
            with pytest.raises(SystemExit) as exit_:
                build_parser().parse_args(argv)
            assert exit_.value.code == 0, f"tumorbench {' '.join(argv)} does not exist"
    capsys.readouterr()
