"""The command line: ``instruct`` (the console entry point) runs the app from any folder, and every config
mistake Hydra finds itself is one ``error:`` line (the rest of the contract is in test_config_errors.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

from conftest import ROOT, manifest_of

from instruct.cli import composition_error


def entry_point(cwd, *args: str) -> subprocess.CompletedProcess:
    """What the `instruct` script pip writes does: import the entry point named in pyproject.toml, call it."""
    module, function = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["instruct"].split(":")
    code = f"import sys; sys.argv = ['instruct', *sys.argv[1:]]; from {module} import {function}; {function}()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def test_the_entry_point_builds_a_dataset_from_another_folder(tmp_path):
    result = entry_point(tmp_path, "progress=false", "card.chart=false", "mix=none")
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / result.stdout.strip().splitlines()[-1].removeprefix("dataset: ")
    assert run_dir.parent == tmp_path / "outputs" / "default"  # output_root is relative to where it runs
    assert manifest_of(run_dir)["counts"]["generated"] > 0  # the bundled sample was found from elsewhere
    shown = entry_point(tmp_path, "show", str(run_dir), "-n", "1")
    assert shown.returncode == 0 and shown.stdout.startswith("── ")


def test_the_entry_point_reports_a_typo_in_one_line(tmp_path):
    result = entry_point(tmp_path, "seeed=1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: unknown config key seeed (a typo? `python run.py --cfg job` lists every key)"]
    assert not any(tmp_path.iterdir())


def test_hydra_full_error_still_gives_hydras_own_traceback(tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "seeed=1", f"output_root={tmp_path}"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" in result.stderr and "ConfigCompositionException" in result.stderr


def test_a_composition_error_without_detail_is_its_first_line():
    from hydra.errors import ConfigCompositionException

    assert composition_error(ConfigCompositionException("Something odd\nmore")) == "Something odd"
