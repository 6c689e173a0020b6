"""The executor group: executor=local needs no Ray, executor=ray without Ray says how to get it, the Ray keys
are checked before any work, and the executor is not part of what a run's version id hashes (a run started
on one executor can be resumed on the other). The Ray runs themselves are in test_ray_executor.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, compose_config

from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.schema import versioned_config


def _fails_before_any_work(tmp_path, *overrides: str) -> str:
    with pytest.raises(InstructError) as failure:
        generate(compose_config("progress=false", *overrides), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert "\n" not in str(failure.value)
    return str(failure.value)


@pytest.mark.parametrize("overrides, message", [
    (["executor.address=ray://head:10001"], "executor.address applies to executor=ray only"),
    (["executor.max_retries=5"], "executor.max_retries applies to executor=ray only"),
    (["executor=ray", "executor.num_cpus=0"], "executor.num_cpus=0.0 must be > 0"),
    (["executor=ray", "executor.max_retries=-1"], "executor.max_retries=-1 must be >= 0"),
    (["executor=ray", "executor.address="], "executor.address must be auto, local, or a cluster address"),
    (["executor.name=dask"], "executor.name='dask' is unknown"),
])
def test_executor_mistakes_fail_before_any_work_naming_the_key(tmp_path, overrides, message):
    assert message in _fails_before_any_work(tmp_path, *overrides)


def test_executor_ray_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert "pip install 'instruct[ray]'" in _fails_before_any_work(tmp_path, "executor=ray")


def test_the_local_executor_never_imports_ray():
    code = ("import sys, instruct.pipeline, instruct.executor; "
            "sys.exit('ray imported' if 'ray' in sys.modules else 0)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_the_executor_does_not_change_the_version_id():
    local = compose_config("workers=1")
    on_ray = compose_config("executor=ray", "executor.address=local", "executor.num_cpus=2", "workers=8")
    assert versioned_config(local) == versioned_config(on_ray)
