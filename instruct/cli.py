"""The command line around the Hydra app: config mistakes Hydra finds while composing become one ``error:`` line
(exit status 2, like every mistake our own checks find), and ``instruct`` runs the app from any folder."""

from __future__ import annotations

import os
import re
import runpy
import sys
from pathlib import Path
from typing import Callable

from hydra.errors import CompactHydraException, MissingConfigException

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN_PY = PROJECT_ROOT / "run.py"
_FULL_ERROR = "HYDRA_FULL_ERROR"
_NOT_A_KEY = re.compile(r"^Could not override '([^']+)'\.")


def composition_error(exc: CompactHydraException) -> str:
    """One line for a mistake Hydra found while composing the config.

    An unknown key given without ``+`` gets the same message as one given with it (schema.check): Hydra's
    suggestion to add ``+`` would only lead there.
    """
    first = str(exc).strip().splitlines()[0].removeprefix("Error merging override ")
    unknown = _NOT_A_KEY.match(first)
    if unknown:
        return f"unknown config key {unknown.group(1)} (a typo? `python run.py --cfg job` lists every key)"
    if isinstance(exc, MissingConfigException) and exc.options:
        return f"{first} (options: {', '.join(exc.options)})"
    cause = exc.__cause__
    detail = str(cause).strip().splitlines()[0] if cause is not None and str(cause).strip() else ""
    return f"{first}: {detail}" if detail else first


def run_hydra_app(main: Callable[[], None]) -> None:
    """Call a ``@hydra.main`` function; a composition mistake prints one ``error:`` line and exits with 2.

    Hydra prints such mistakes itself unless HYDRA_FULL_ERROR is set, so it is set while the app runs and the
    exception is reported here. A user who set HYDRA_FULL_ERROR gets Hydra's own full traceback.
    """
    wants_full = os.environ.get(_FULL_ERROR) == "1"
    os.environ[_FULL_ERROR] = "1"
    try:
        main()
    except CompactHydraException as exc:
        if wants_full:
            raise
        print(f"error: {composition_error(exc)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not wants_full:
            os.environ.pop(_FULL_ERROR, None)


def main() -> None:
    """``instruct [overrides]`` runs the dataset build (``run.py``); ``instruct show RUN_DIR`` prints rows."""
    if len(sys.argv) > 1 and sys.argv[1] == "show":
        from instruct.show import main as show

        sys.exit(show(sys.argv[2:]))
    if not RUN_PY.is_file():  # a wheel install has the package but not the checkout's run.py and conf/
        print(f"error: {RUN_PY} not found: install instruct from its checkout with `pip install -e .`",
              file=sys.stderr)
        sys.exit(2)
    sys.argv[0] = str(RUN_PY)
    runpy.run_path(str(RUN_PY), run_name="__main__")
