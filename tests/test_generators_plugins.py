"""Generator plug-ins: entry-point discovery, metadata, grid validation, and the example package
(examples/sphere_tumor) installed and run through `synthesize` and a one-cell grid."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from synthesis import registry

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sphere_tumor"


def _dist_info_by_hand(source: Path, site: Path) -> None:
    """What pip would write for discovery (METADATA + entry_points.txt), from the example's
    pyproject, for venvs without setuptools (Python >= 3.12 venvs have none)."""
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    points = project["entry-points"]["tumorbench.generators"]
    (info / "entry_points.txt").write_text("[tumorbench.generators]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    shutil.copytree(source / "tumorbench_sphere", site / "tumorbench_sphere")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The example package installed (pip, offline, no deps) into a folder of its own."""
    tmp = tmp_path_factory.mktemp("plugin")
    source, site = tmp / "src", tmp / "site"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep the checkout clean
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(site), str(source)], capture_output=True, text=True)
    if result.returncode != 0:  # no setuptools in this venv: the same files, written directly
        shutil.rmtree(site, ignore_errors=True)
        _dist_info_by_hand(source, site)
    assert list(site.glob("tumorbench_sphere-*.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def plugin(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    yield plugin_site
    for name in [m for m in sys.modules if m.startswith("tumorbench_sphere")]:
        del sys.modules[name]


def test_builtins_in_pyproject_match_the_registry():
    points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][registry.GROUP]
    assert points == registry.BUILTIN


def test_builtin_metadata_is_complete():
    rows = {row["name"]: row for row in registry.describe_all()}
    assert {"hu", "difftumor", "cellular"} <= set(rows)
    assert all("error" not in row for row in rows.values())
    assert rows["difftumor"]["needs_weights"] and "generators train autoencoder" in rows["difftumor"]["weights_source"]
    assert rows["cellular"]["replayable"] and rows["cellular"]["devices"] == ["cpu"]
    assert rows["cellular"]["kwargs"]["variant"]["default"] == "'paper'"


def test_example_plugin_is_discovered_after_install(plugin):
    assert "sphere" in registry.registered_names()
    info = registry.describe("sphere")
    assert info["distribution"] == "tumorbench-sphere" and info["display_name"] == "Sphere (example plug-in)"
    assert set(info["kwargs"]) == {"radius_mm", "contrast_hu"}


def test_top_help_names_an_installed_plugin_regime(plugin):
    from benchmark.cli import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "plug-in generators installed here: sphere (from tumorbench-sphere)" in text


def test_example_plugin_is_absent_without_install():
    assert "sphere" not in registry.registered_names()


def test_generators_list_and_show_from_a_fresh_process(plugin_site):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)])}
    listed = subprocess.run([sys.executable, "-m", "benchmark", "generators", "list"], capture_output=True,
                            text=True, env=env, cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(lines) >= {"hu", "difftumor", "cellular", "sphere"}
    assert "tumorbench-sphere" in lines["sphere"] and "Apache-2.0" in lines["sphere"]
    assert lines["difftumor"].split()[1] == "yes"  # needs weights
    shown = subprocess.run([sys.executable, "-m", "benchmark", "generators", "show", "sphere", "--json"],
                           capture_output=True, text=True, env=env, cwd=ROOT)
    info = json.loads(shown.stdout)
    assert info["kwargs"]["contrast_hu"] == {"default": "60.0", "help": "HU removed at the centre"}


def test_show_unknown_generator_lists_the_registered_ones(capsys):
    assert main(["generators", "show", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorbench: error: unknown generator 'nope'") and "cellular, difftumor, hu" in err


def test_broken_metadata_is_reported_not_hidden(monkeypatch):
    def factory(organ):
        return None

    factory.metadata = {"display_name": "x", "licence": "MIT", "devices": ["tpu"]}
    monkeypatch.setattr(registry, "BUILTIN", {**registry.BUILTIN, "broken": "test_generators_plugins:_BROKEN"})
    monkeypatch.setattr(sys.modules[__name__], "_BROKEN", factory, raising=False)
    row = {r["name"]: r for r in registry.describe_all()}["broken"]
    assert "devices" in row["error"] and "tpu" in row["error"]


def test_make_generator_drops_harness_kwargs_but_rejects_unknown_ones(plugin):
    gen = registry.make_generator("sphere", "liver", device="cpu", checkpoint=None, size_probs=None)
    assert gen.name == "sphere"
    with pytest.raises(registry.SynthesisInputError, match="takes no keyword 'radius'"):
        registry.make_generator("sphere", "liver", radius=3)
    with pytest.raises(registry.SynthesisInputError, match="does not take size_probs"):
        registry.make_generator("sphere", "liver", size_probs={"large": 1.0})


def _grid(path: Path, dataset: Path, regimes: str, extra: str = "") -> Path:
    path.write_text(f'name = "plug"\npreset = "tiny"\nresults_dir = "{path.parent / "results"}"\n'
                    f"regimes = {regimes}\n[datasets]\nliver = \"{dataset}\"\n{extra}")
    return path


def test_unknown_regime_fails_before_any_run_with_the_list(tmp_path, capsys):
    grid = _grid(tmp_path / "grid.toml", tmp_path / "missing_dataset", '["real", "my_method"]')
    assert main(["run", str(grid), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "field 'regimes' has 'my_method'" in err
    assert all(name in err for name in ("'real'", "'hu'", "'difftumor'", "'cellular'"))
    assert not (tmp_path / "results").exists()


def test_grid_checks_generator_kwargs(tmp_path, capsys):
    grid = _grid(tmp_path / "grid.toml", tmp_path, '["cellular"]', "[generators.cellular]\nvarient = \"paper\"\n")
    assert main(["run", str(grid), "--dry-run"]) == 2
    assert "[generators.cellular]: generator 'cellular' takes no keyword 'varient'" in capsys.readouterr().err
    grid = _grid(tmp_path / "grid.toml", tmp_path, '["hu"]', "[generators.nope]\nx = 1\n")
    assert main(["run", str(grid), "--dry-run"]) == 2
    assert "unknown field 'generators.nope'" in capsys.readouterr().err


def test_plugin_through_synthesize_and_replay(plugin, tmp_path):
    import nibabel as nib

    shape = (40, 36, 30)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    organ = sum(((g - n / 2) / (n / 2.5)) ** 2 for g, n in zip(grid, shape)) <= 1
    ct = np.where(organ, 100.0, -50.0).astype(np.float32)
    nib.save(nib.Nifti1Image(ct, np.diag([1.5, 1.5, 2.0, 1])), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(organ.astype(np.uint8), np.diag([1.5, 1.5, 2.0, 1])), tmp_path / "mask.nii.gz")
    args = [str(tmp_path / "ct.nii.gz"), str(tmp_path / "mask.nii.gz"), "--organ", "liver"]
    assert main(["synthesize", *args, "--method", "sphere", "--seed", "3", "--out", str(tmp_path / "a")]) == 0
    tumor = np.asarray(nib.load(tmp_path / "a" / "tumor.nii.gz").dataobj).astype(bool)
    out = np.asarray(nib.load(tmp_path / "a" / "ct.nii.gz").dataobj)
    assert tumor.any() and not (tumor & ~organ).any() and (out[tumor] < 100).all()
    doc = json.loads((tmp_path / "a" / "params.json").read_text())
    assert doc["method"] == "sphere" and doc["tumors"][0]["method"] == "sphere"  # the plug-in made it
    assert 4.0 <= doc["tumors"][0]["radius_mm"] <= 12.0
    assert main(["synthesize", *args[:2], "--replay", str(tmp_path / "a" / "params.json"),
                 "--out", str(tmp_path / "b")]) == 0
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "b" / "ct.nii.gz").dataobj), out)


def test_plugin_as_the_regime_of_a_one_cell_grid(plugin, tmp_path, monkeypatch):
    import tumorbench_sphere

    from benchmark.data import generate_phantom_dataset
    from benchmark.runner import run_grid
    from test_runner_fakes import cell_runs, fresh_tracking_uri

    calls = []  # the cell runs in this process and num_workers = 0: the trainer calls the plug-in here
    original = tumorbench_sphere.SphereGenerator.__call__

    def recording(self, ct_hu, organ_mask, spacing, rng):
        out = original(self, ct_hu, organ_mask, spacing, rng)
        calls.append((self.radius_mm, len(out.params), bool(out.tumor_mask.any())))
        return out

    monkeypatch.setattr(tumorbench_sphere.SphereGenerator, "__call__", recording)
    generate_phantom_dataset(tmp_path / "liver", "liver", n_cases=10, seed=3, shape=(48, 40, 32), progress=False)
    extra = ("[train]\nepochs = 1\niters_per_epoch = 6\nval_every = 1\ncrop_size = [32, 32, 32]\nsynth_prob = 1.0\n"
             "num_workers = 0\n"
             "[generators.sphere]\nradius_mm = [3.0, 5.0]\n[evaluate]\ncross_organ = false\npreviews = 0\n")
    grid = _grid(tmp_path / "grid.toml", tmp_path / "liver", '["sphere"]', extra)
    uri = fresh_tracking_uri(tmp_path)
    outcomes = run_grid(grid, tracking_uri=uri, progress=False)
    assert [o.status for o in outcomes] == ["finished"], [o.error for o in outcomes]
    runs = cell_runs(uri, "plug")
    assert list(runs["params.regime"]) == ["sphere"]
    assert json.loads(runs["params.generator.radius_mm"].iloc[0]) == [3.0, 5.0]
    assert 0 <= runs["metrics.organ_dsc"].iloc[0] <= 1
    assert calls and all(radius == (3.0, 5.0) and tumors for radius, _, tumors in calls)
