"""Build an instruction-tuning dataset: ``python run.py --help`` lists the config groups and examples."""

from __future__ import annotations

import os

# Before numpy is imported: the tool does no linear algebra, and OpenBLAS would otherwise start a thread per
# core at import, which costs CPU at every start (a user who sets the variable keeps their value).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import logging  # noqa: E402 (the variable above must be set first)
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from instruct.cli import run_hydra_app
from instruct.errors import InstructError
from instruct.preflight import remove_new_empty_folders
from instruct.schema import InstructConfig, register

if TYPE_CHECKING:
    from instruct.pipeline import RunInfo

register()
log = logging.getLogger("instruct")


def run_info() -> RunInfo:
    from instruct.pipeline import RunInfo

    hydra_cfg = HydraConfig.get()
    return RunInfo(
        overrides=list(hydra_cfg.overrides.task),
        # Multi-select groups are missing from runtime.choices; the pipeline adds the task names itself.
        choices={k: v for k, v in hydra_cfg.runtime.choices.items() if not k.startswith("hydra/")},
        job_num=hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None,
        hydra_config=hydra_cfg,
    )


def resumed_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """The config an unfinished run was started with, read from its folder; of this command's config only
    what changes how it executes (workers, executor, progress) is taken, so a resume writes the same bytes."""
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise InstructError(f"cannot resume {run_dir}: no .hydra/config.yaml (not a run folder, or killed before "
                            f"it started writing; start a new run)")
    try:
        # Onto the bare schema, not onto this command's config: merging dicts would add this command's
        # tasks to the run's own.
        started_with = OmegaConf.merge(OmegaConf.structured(InstructConfig), OmegaConf.load(saved))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise InstructError(f"cannot resume {run_dir}: its .hydra/config.yaml does not fit this version: "
                            f"{str(exc).splitlines()[0]}") from None
    started_with.workers, started_with.executor, started_with.progress = cfg.workers, cfg.executor, cfg.progress
    return started_with


# Overrides and options through which a run can set `hydra.mode` (preset=dolly_sweep does); the defaults
# leave it unset (tests/test_config.py::test_only_a_preset_or_a_hydra_override_sets_the_run_mode).
_MODE_OVERRIDES = ("preset", "hydra")
_CONFIG_OPTIONS = ("-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir")
_PRESETS = Path(__file__).resolve().parent / "conf" / "preset"


def _may_set_mode(override: str) -> bool:
    """Whether an override could set ``hydra.mode``: any ``hydra…`` one, and a ``preset…`` one unless it names
    one of our presets whose file sets no mode (only a preset or hydra file may, which a test checks)."""
    key, _, value = override.lstrip("+~").partition("=")
    if not key.startswith(_MODE_OVERRIDES):
        return False
    if key != "preset" or not value.isidentifier():  # hydra.…, preset@…, a sweep of presets
        return True
    preset = _PRESETS / f"{value}.yaml"
    return not preset.is_file() or "mode:" in preset.read_text(encoding="utf-8")


def compose_once() -> None:
    """Make ``hydra.main`` compose the config once instead of twice.

    Before it runs an app, Hydra composes the whole config a first time only to read ``hydra.mode``
    (``Hydra.get_mode``), then again for the run. When no override or option can set the mode, it is unset,
    and Hydra's own answer for an unset mode (None: a run, or a sweep with ``-m``) is given without the first
    compose. Any other command line is left to Hydra's own ``get_mode``.
    """
    hydras_get_mode = Hydra.get_mode

    def get_mode(self, config_name, overrides):
        if (any(_may_set_mode(override) for override in overrides)
                or any(arg.split("=")[0] in _CONFIG_OPTIONS for arg in sys.argv[1:])):
            return hydras_get_mode(self, config_name=config_name, overrides=overrides)
        return None

    Hydra.get_mode = get_mode


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    # The pipeline (numpy, the tasks, their word lists) is imported once a config is composed, so --help, --cfg
    # and a config mistake are answered without it.
    from instruct.pipeline import generate
    from instruct.responders import merge_config

    try:
        if cfg.responder.name == "merge":  # a Batch output into a new dataset beside the batch run
            merged, parent = merge_config(cfg)
            out = generate(merged, parent, run_info())
        elif cfg.resume:
            run_dir = Path(cfg.resume)
            out = generate(resumed_config(cfg, run_dir), run_dir.parent, run_info(), resume_dir=run_dir)
        else:
            out = generate(cfg, Path(HydraConfig.get().runtime.output_dir), run_info())
    except InstructError as exc:
        print(f"error: {exc}", file=sys.stderr)
        remove_new_empty_folders()  # what Hydra made for this run, if nothing was written in it
        sys.exit(2)
    print(f"dataset: {out}")


if __name__ == "__main__":
    compose_once()
    run_hydra_app(main)
