"""The CLI answers fast and turns bad input into one clear error with exit code 2."""
import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import SUBCOMMANDS, build_parser, main


def test_help_lists_every_available_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    registered = build_parser()._subparsers._group_actions[0].choices
    assert registered, "no subcommand registered"
    for name in registered:
        assert name in out


def test_each_subcommand_has_help():
    registered = build_parser()._subparsers._group_actions[0].choices
    for name, sub in registered.items():
        text = sub.format_help()
        assert "usage: tumorbench " + name in text
        assert len(text) > 80, f"{name} --help explains nothing"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: tumorbench" in capsys.readouterr().out


def test_help_does_not_import_heavy_packages():
    code = (
        "import sys; from benchmark.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'monai', 'mlflow', 'optuna', 'radiomics') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"`tumorbench --help` imports {out.strip()}"


def test_input_errors_become_one_line_and_exit_2(capsys):
    from benchmark.cli import run_entry
    from benchmark.errors import InputError

    def entry(args):
        raise InputError("/data/x.nii.gz: labels file not found")

    assert run_entry(entry, None) == 2
    err = capsys.readouterr().err
    assert err.strip() == "tumorbench: error: /data/x.nii.gz: labels file not found"


WORKFLOW = ["demo", "data", "synthesize", "generators", "run", "tune", "evaluate", "report", "scorecard", "ui",
            "radiomics", "reader-study", "perf"]
ROOT = Path(__file__).resolve().parents[1]


def _choices(parser: argparse.ArgumentParser) -> dict | None:
    return next((a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def test_help_lists_the_commands_in_workflow_order(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listed = re.findall(r"^    (\S+)", capsys.readouterr().out, re.M)
    assert listed == WORKFLOW == list(_choices(build_parser()))


def test_top_description_names_every_regime_kind():
    from synthesis.registry import registered_names

    text = " ".join(build_parser().format_help().split())
    assert "'real' (real tumors only)" in text and "built-in generators hu, difftumor, cellular" in text
    assert set(registered_names()) <= set(re.findall(r"[a-z_]+", text))


def test_perf_help_lists_every_benchmark():
    from benchmark.perf import PERF_MODULES

    perf = _choices(build_parser())["perf"]
    assert list(_choices(perf)) == list(PERF_MODULES)
    top = " ".join(build_parser().format_help().split())
    assert f"run a performance benchmark ({', '.join(PERF_MODULES)})" in top


def test_version_is_the_installed_packages(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"tumorbench {version('tumorbench')}"


def test_generators_is_one_noun_and_the_old_command_says_where_it_went(capsys):
    from benchmark.cli import generators

    parse = build_parser().parse_args
    assert parse(["generators", "list"]).func is generators.list_entry
    assert parse(["generators", "train", "autoencoder", "d", "--out", "o"]).func is generators.train_autoencoder_entry
    args = parse(["generators", "train", "diffusion", "d", "--autoencoder", "a", "--early", "--out", "o"])
    assert args.func is generators.train_diffusion_entry and args.stage == "early"
    assert parse(["generators", "import-official", "--autoencoder", "a", "--organ", "liver", "--out", "o"]).func \
        is generators.import_official_entry
    assert main(["generator", "train-autoencoder", "d", "--out", "o"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorbench: error: `tumorbench generator` is now `tumorbench generators train ")


def _documented_commands():
    """(file, command words) of every `tumorbench ...` in code: inline spans and lines that start with it."""
    span = re.compile(r"`(?:\$ )?tumorbench ([^`]+)`|^[\s#]*(?:\$ )?tumorbench (.+)$", re.M)
    files = [*ROOT.glob("docs/*.md"), *ROOT.glob("benchmark/cli/*.py"), *ROOT.glob("grids/*.toml"),
             *ROOT.glob("examples/**/*.md"), ROOT / "Makefile"]
    for path in sorted(files):
        text = path.read_text().split("## Renamed commands")[0]  # docs/cli.md's table of old spellings
        for match in span.finditer(text):
            words = (match.group(1) or match.group(2)).replace("\\|", "|").split()  # | escaped in tables
            if words and re.fullmatch(r"[a-z][a-z-]*", words[0]):  # not program output or an f-string
                yield path.relative_to(ROOT), words


def test_documented_commands_exist():
    """Every `tumorbench a b ...` in the docs, help texts, grids and Makefile names real (sub)commands."""
    wrong = []
    for where, words in _documented_commands():
        parsers = [build_parser()]
        for word in words:
            choices = [_choices(p) for p in parsers]
            if None in choices or word.startswith(("<", "-", "…", ".")):
                break  # past the subcommands: arguments
            try:
                parsers = [c[name] for c in choices for name in word.split("|")]
            except KeyError:
                wrong.append(f"{where}: tumorbench {' '.join(words)}")
                break
    assert not wrong, "\n".join(wrong)


# Standard-library features newer than 3.10 and the Python that brought them (vermin found no others).
NEWER_FEATURES = {r"^\s*import tomllib": (3, 11), r"\.add_note\(": (3, 11), r"\bStrEnum\b": (3, 11),
                  r"from typing import .*\bSelf\b": (3, 11), r"\bExceptionGroup\b": (3, 11),
                  r"\bdatetime\.UTC\b": (3, 11), r"\bbatched\(": (3, 12), r"^\s*type \w+ = ": (3, 12)}


def test_requires_python_is_what_the_code_needs():
    import tomllib

    from packaging.specifiers import SpecifierSet

    sources = [p for pkg in ("benchmark", "models", "synthesis", "reports", "tumorbench_common")
               for p in (ROOT / pkg).rglob("*.py")]
    needed = max((version for pattern, version in NEWER_FEATURES.items()
                  if any(re.search(pattern, p.read_text(), re.M) for p in sources)), default=(3, 10))
    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert f"{needed[0]}.{needed[1]}" in spec and f"{needed[0]}.{needed[1] - 1}" not in spec
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in spec
