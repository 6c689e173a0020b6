"""Build an instruction-tuning dataset: ``python run.py --help`` lists the config groups and examples."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from instruct.errors import InstructError
from instruct.pipeline import RunInfo, generate
from instruct.schema import register

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


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.resume:
            run_dir = Path(cfg.resume)
            saved = run_dir / ".hydra" / "config.yaml"
            if not saved.is_file():
                raise InstructError(f"cannot resume {run_dir}: no .hydra/config.yaml (not a run folder?)")
            started_with = OmegaConf.merge(OmegaConf.structured(cfg), OmegaConf.load(saved))
            started_with.workers, started_with.progress = cfg.workers, cfg.progress
            out = generate(started_with, run_dir.parent, run_info(), resume_dir=run_dir)
        else:
            out = generate(cfg, Path(HydraConfig.get().runtime.output_dir), run_info())
    except InstructError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(f"dataset: {out}")


if __name__ == "__main__":
    main()
