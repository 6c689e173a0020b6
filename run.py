"""Build an instruction-tuning dataset: ``python run.py --help`` lists the config groups and examples."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from instruct.cli import run_hydra_app
from instruct.errors import InstructError
from instruct.pipeline import RunInfo, generate
from instruct.preflight import remove_new_empty_folders
from instruct.responders import merge_config
from instruct.schema import InstructConfig, register

register()
log = logging.getLogger("instruct")


def run_info() -> RunInfo:
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
    what changes how it executes (workers, progress) is taken, so a resume writes the same bytes."""
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
    started_with.workers, started_with.progress = cfg.workers, cfg.progress
    return started_with


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
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
    run_hydra_app(main)
