"""Shared test helpers: compose the real config (absolute config_dir), run the pipeline into tmp_path."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import orjson
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import strategies as st
from omegaconf import DictConfig

# What the tool keeps in the user's cache folder (usercache: datasketch's dedup answer, wordfreq's Zipf table) goes
# to a folder of the suite's own, set before instruct is imported (the Zipf table is read at import); child
# processes inherit it.
_CACHE = tempfile.mkdtemp(prefix="instruct-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

from instruct.pipeline import generate  # noqa: E402  (after the cache folder is set)
from instruct.schema import register  # noqa: E402
from instruct.text import contains_whole_word  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "blueprint-sample"

register()


def compose_config(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_pipeline(tmp_path: Path, *overrides: str) -> Path:
    """Compose with overrides and generate into tmp_path/out; returns the versioned run folder."""
    cfg = compose_config("progress=false", *overrides)
    return generate(cfg, tmp_path / "out")


def run_only(tmp_path: Path, task: str, *overrides: str) -> Path:
    """A run whose only task is ``task`` (its conf/task/<task>.yaml), without Dolly."""
    return run_pipeline(tmp_path, "tasks=paper", "~tasks.needle", "~tasks.keyword_post", "~tasks.completion",
                        f"+task@tasks.{task}={task}", "mix=none", *overrides)


def rows_of(run_dir: Path, split: str = "train") -> list:
    """Every row of a run's data files of one split."""
    return [row for path in sorted((run_dir / split).glob("*.jsonl")) for row in read_jsonl(path)]


def data_files(run_dir: Path) -> dict[str, bytes]:
    """Every file a trainer or a user reads, by relative path (not the manifest: it records timings)."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for split in ("train", "validation", "meta/train",
                                                                        "meta/validation")
             for p in sorted((run_dir / split).glob("*.jsonl"))}
    files["rejects.jsonl"] = (run_dir / "rejects.jsonl").read_bytes()
    return files


# Posts as generated text: words, hashtags, handles, <URL> tokens, numbers, emoji, odd spacing and line breaks.
post_word = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzéü", min_size=1, max_size=9),
    st.sampled_from(["<URL>", "@someone.bsky.social", "#Climate", "#vote2025", "2025", "it's", "—", "🙂", "the",
                     "and", "Transit", "(parks)", "well,", "x1"]),
)
post_text = st.lists(st.tuples(post_word, st.sampled_from([" ", "  ", "\n", " \n\n"])), min_size=1, max_size=40).map(
    lambda parts: "".join(w + s for w, s in parts).strip()).filter(bool)


def on_one_line(text: str, phrase: str) -> bool:
    """Whether every word of ``phrase`` occurs, as a whole word, on one line of ``text``: a keyphrase is a run
    of words the post has together, never the end of one line joined to the start of the next."""
    return any(all(contains_whole_word(line, word) for word in phrase.split()) for line in text.splitlines())


def read_jsonl(path: Path) -> list:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def manifest_of(run_dir: Path) -> dict:
    return orjson.loads((run_dir / "manifest.json").read_bytes())


@pytest.fixture
def shared_sample() -> Path:
    """The 400 real BluePrint threads beside the checkout; absent in a user's clone."""
    if not SHARED_SAMPLE.is_dir():
        pytest.skip("../shared/data/blueprint-sample is not beside this checkout")
    return SHARED_SAMPLE


@pytest.fixture
def shared_lines(shared_sample) -> list[tuple[str, str, int, bytes]]:
    """Every line of the real samples in both shapes: (shape folder, cluster key, 0-based line, raw bytes)."""
    from instruct.clusterfile import read_lines, scan

    lines = []
    for path in sorted(shared_sample.glob("*/cluster_*.jsonl")):
        cluster = scan(path)
        lines += [(path.parent.name, cluster.key, line, raw)
                  for line, raw in read_lines(cluster, list(range(cluster.lines)))]
    return lines


DOLLY_ROWS = [
    {"instruction": f"Name {n} things you would pack for a day hike.", "context": "",
     "response": f"Here are {n}: water, a map, sunscreen and a snack.", "category": "brainstorming"}
    for n in range(2, 40)
] + [
    {"instruction": "Summarise the paragraph.", "context": f"Paragraph number {n} says that rivers carry silt.",
     "response": "Rivers carry silt.", "category": "summarization"}
    for n in range(40)
]


@pytest.fixture
def dolly_file(tmp_path: Path) -> Path:
    """A small file in Dolly's format (the real Dolly 15k is not on these machines)."""
    path = tmp_path / "dolly.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in DOLLY_ROWS))
    return path
