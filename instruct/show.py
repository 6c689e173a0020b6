"""``python -m instruct show RUN_DIR [--task T] [-n N] [--split S]``: print rows of a run folder readably.

Rows are shown as a person reads them: the task and where the row came from, then the prompt and the
response as plain text, whatever the output format. A folder without a complete manifest is refused (its files
are only the clusters finished so far) unless ``--incomplete`` is given.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import orjson

from instruct.card import prompt_and_response
from instruct.formats import sidecar_path
from instruct.rundir import MANIFEST, is_complete
from instruct.trainers import LOADABLE


def rows(run_dir: Path, split: str, fmt: str) -> Iterator[tuple[dict, str, str]]:
    """(meta, prompt, response) of every row of one split, file by file in name order."""
    for path in sorted((run_dir / split).glob("*.jsonl")):
        metas = open(sidecar_path(path), "rb") if fmt not in LOADABLE else None
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    record = orjson.loads(line)
                    meta = orjson.loads(next(metas)) if metas is not None else record["meta"]
                    yield (meta, *prompt_and_response(record, fmt))
        finally:
            if metas is not None:
                metas.close()


def format_row(meta: dict, prompt: str, response: str, max_chars: int | None) -> str:
    def body(text: str) -> str:
        if max_chars is not None and len(text) > max_chars:
            text = text[:max_chars] + f" … [{len(text) - max_chars} more characters]"
        return textwrap.indent(text, "  │ ", lambda line: True)

    where = f"{meta['cluster']} line {meta['line']}" if meta.get("line") is not None else meta.get("cluster", "")
    head = f"── {meta['task']}" + (f" / {meta['variant']}" if meta.get("variant") else "") + f" · {where}"
    if meta.get("template_id"):
        head += f" · template {meta['template_id']}"
    return "\n".join([head, "  prompt:", body(prompt), "  response:", body(response), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m instruct show", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (the path `python run.py` printed)")
    parser.add_argument("--task", help="only rows of this task (`dolly` for the Dolly rows)")
    parser.add_argument("-n", type=int, default=3, help="rows to print (default 3)")
    parser.add_argument("--split", default="train", help="train (default) or validation")
    parser.add_argument("--max-chars", type=int, default=2000, help="cut each prompt/response (0 = never)")
    parser.add_argument("--incomplete", action="store_true", help="show an unfinished run's rows anyway")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    config = run_dir / ".hydra" / "config.yaml"
    if not (run_dir / MANIFEST).exists() and not config.exists():
        print(f"error: {run_dir} is not a run folder (no manifest.json, no .hydra/config.yaml)", file=sys.stderr)
        return 2
    if not is_complete(run_dir):
        message = (f"{run_dir} is an incomplete run (no complete manifest.json): its files hold only the clusters "
                   f"finished so far. Finish it with `python run.py resume={run_dir}`")
        if not args.incomplete:
            print(f"error: {message}; --incomplete shows them anyway", file=sys.stderr)
            return 2
        print(f"warning: {message}", file=sys.stderr)
    import yaml

    fmt = yaml.safe_load(config.read_text())["output"]["format"]
    shown = 0
    for meta, prompt, response in rows(run_dir, args.split, fmt):
        if args.task and meta["task"] != args.task:
            continue
        if shown == args.n:
            break
        print(format_row(meta, prompt, response, args.max_chars or None))
        shown += 1
    if shown == 0:
        print(f"error: no {args.split} rows" + (f" of task {args.task!r}" if args.task else "") + f" in {run_dir}",
              file=sys.stderr)
        return 1
    return 0
