"""A check that must run before Hydra itself writes anything: Hydra creates the run (or sweep) folder before
our code starts, and an unusable output_root would otherwise end in a traceback from inside Hydra."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def unusable_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be created and written to, or None. Creates nothing: it looks at the nearest
    part of the path that exists."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):  # root passes, except on a read-only file system
        return f"{existing} is not writable"
    return None


# The folders of the run (or sweep) dir that did not exist before Hydra made them, deepest first: a run that
# fails before writing anything removes those of them that are still empty (remove_new_empty_folders).
NEW_FOLDERS: list[Path] = []


def remove_new_empty_folders() -> None:
    for folder in NEW_FOLDERS:
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            return


class OutputFolderCheck(Callback):
    """Fails with one ``error: …`` line (exit status 2, as every user-fixable error) when the output folder
    cannot be created, before Hydra tries to."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _require(Path(config.hydra.run.dir))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _require(Path(config.hydra.sweep.dir))


def _require(folder: Path) -> None:
    missing = folder.absolute()
    NEW_FOLDERS.clear()
    while not missing.exists() and missing != missing.parent:
        NEW_FOLDERS.append(missing)
        missing = missing.parent
    reason = unusable_reason(folder)
    if reason:
        print(f"error: cannot create output folder {folder}: {reason} (set output_root=… to a writable folder)",
              file=sys.stderr)
        raise SystemExit(2)
