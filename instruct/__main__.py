"""``python -m instruct [overrides]`` builds a dataset (as ``python run.py``); ``python -m instruct show RUN_DIR``
prints its rows."""

from instruct.cli import main

main()
