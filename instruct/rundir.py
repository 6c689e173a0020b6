"""The versioned run directory and the atomic file writes that keep it honest.

A run directory is ``<parent>/<date_time>_<version id>``. The version id is a hash of the config (minus keys
that only change how the run executes) and of the inputs' sha256, so the same config on the same inputs
gets the same id; the directory itself is created with an exclusive mkdir, so two runs started in the same
second never share one. Data files appear complete or not at all (written to a temporary name, then
renamed), and ``manifest.json`` is written last with ``"complete": true``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import orjson
from omegaconf import DictConfig, OmegaConf

from instruct.errors import InstructError

log = logging.getLogger("instruct")

MANIFEST = "manifest.json"
STATE = ".state"
PARTS = ".parts"


def version_id(content: dict) -> str:
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]


def create_run_dir(parent: Path, version: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InstructError(f"cannot create output folder {parent}: {exc.strerror or exc} (set output_root=…)") from None
    for attempt in range(1, 1000):
        name = f"{stamp}_{version}" if attempt == 1 else f"{stamp}-{attempt}_{version}"
        try:
            (parent / name).mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise InstructError(f"cannot create run folder in {parent}: {exc.strerror or exc}") from None
        return parent / name
    raise InstructError(f"{parent}: could not find a free run folder name for {stamp}_{version}")


def is_complete(run_dir: Path) -> bool:
    try:
        return bool(orjson.loads((run_dir / MANIFEST).read_bytes()).get("complete"))
    except (OSError, orjson.JSONDecodeError):
        return False


@contextmanager
def atomic_open(path: Path) -> Iterator:
    """Write to ``path`` through a temporary file that is fsynced and renamed into place only on success."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InstructError(f"cannot write {path}: {exc.strerror or exc} (disk full or not writable?)") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: object) -> None:
    with atomic_open(path) as handle:
        handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


IDENTITY = "identity.json"  # in .state/: what the version id of an unfinished run was computed from


def open_run_dir(parent: Path, version: str, resume_dir: Path | None, identity: dict) -> Path:
    if resume_dir is None:
        return create_run_dir(parent, version)
    if is_complete(resume_dir):
        raise InstructError(f"{resume_dir} is already complete; nothing to resume")
    if not resume_dir.name.endswith(f"_{version}"):
        raise InstructError(f"cannot resume {resume_dir}: {what_changed(resume_dir, identity)} changed since it "
                            f"started (this run's version id is {version}); start a new run instead")
    log.info("resuming %s", resume_dir)
    return resume_dir


def what_changed(run_dir: Path, identity: dict) -> str:
    """Name what differs between an unfinished run and this one: the config, which input files, the code."""
    try:
        before = orjson.loads((run_dir / STATE / IDENTITY).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return "its inputs, config or instruct version"
    now = orjson.loads(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS))
    changed = []
    if before.get("config") != now["config"]:
        keys = sorted(k for k in set(before.get("config", {})) | set(now["config"])
                      if before.get("config", {}).get(k) != now["config"].get(k))
        changed.append(f"the config ({', '.join(keys)})")
    if before.get("inputs") != now["inputs"]:
        old, new = dict(map(tuple, before.get("inputs", []))), dict(map(tuple, now["inputs"]))
        files = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        changed.append(f"the input files ({', '.join(files)})")
    if before.get("dolly") != now["dolly"]:
        changed.append("the Dolly file")
    if before.get("filters") != now.get("filters"):
        changed.append("the evaluation files (decontaminate.paths) or the tokenizer (budget.tokenizer)")
    if before.get("tasks") != now["tasks"]:
        changed.append("the task settings or label files")
    if before.get("instruct") != now["instruct"]:
        changed.append(f"the instruct version ({before.get('instruct')} -> {now['instruct']})")
    return " and ".join(changed) or "its identity"


def save_config(run_dir: Path, cfg: DictConfig, overrides: list[str], hydra_config: DictConfig | None) -> None:
    """The composed config, the overrides and Hydra's config in the run folder's .hydra/ (once: a resumed run
    keeps what it was started with)."""
    hydra_dir = run_dir / ".hydra"
    hydra_dir.mkdir(exist_ok=True)
    if not (hydra_dir / "config.yaml").exists():  # a resumed run keeps what it was started with
        with atomic_open(hydra_dir / "config.yaml") as handle:
            handle.write(OmegaConf.to_yaml(cfg).encode())
        with atomic_open(hydra_dir / "overrides.yaml") as handle:
            handle.write(OmegaConf.to_yaml(OmegaConf.create(list(overrides))).encode())
        if hydra_config is not None:
            with atomic_open(hydra_dir / "hydra.yaml") as handle:
                handle.write(OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_config})).encode())
    (run_dir / STATE).mkdir(exist_ok=True)
    (run_dir / PARTS).mkdir(exist_ok=True)
