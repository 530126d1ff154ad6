"""The CLI answers fast and turns bad input into one clear error with exit code 2."""
import subprocess
import sys

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
