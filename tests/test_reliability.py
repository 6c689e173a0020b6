"""A run that fails says why in one line; a run that is killed leaves nothing that looks complete and can be
finished with ``resume=RUN_DIR`` to the same bytes; paths in the data never decide where files go."""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from conftest import (
    ROOT,
    compose_config,
    data_files,
    manifest_of,
    read_jsonl,
    run_pipeline,
)

from instruct.errors import InstructError
from instruct.pipeline import generate
from instruct.rundir import create_run_dir, is_complete

SAMPLE = ROOT / "data" / "sample"


def _sample_records() -> list[dict]:
    return [orjson.loads(line) for name in ("cluster_0.jsonl", "cluster_1.jsonl")
            for line in (SAMPLE / name).read_bytes().splitlines()]


def write_clusters(folder: Path, clusters: int, lines: int, bad_every: int = 0) -> Path:
    """``clusters`` files of ``lines`` real-looking threads (the bundled sample's, with fresh ids); every
    ``bad_every``-th line is broken JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    records = _sample_records()
    for cluster in range(clusters):
        out = []
        for n in range(lines):
            if bad_every and n % bad_every == bad_every - 1:
                out.append(b'{"thread": [')
                continue
            record = dict(records[(n * 7 + cluster) % len(records)])
            record["id"] = f"c{cluster}-{n}"
            out.append(orjson.dumps(record))
        (folder / f"cluster_{cluster}.jsonl").write_bytes(b"\n".join(out) + b"\n")
    return folder



def run_dirs(output_root: Path) -> list[Path]:
    return sorted(p for p in (output_root / "default").glob("*_*") if p.is_dir())


def cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    flags = [a for a in args if a.startswith("-")]  # Hydra's flags (-m) go before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *flags, "progress=false", *overrides], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# --- the reject threshold -----------------------------------------------------------------------------------

def _lines_with_bad(path: Path, good: int, bad: list[bytes]) -> None:
    records = _sample_records()
    lines = [orjson.dumps({**records[n % len(records)], "id": f"{path.stem}-{n}"}) for n in range(good)]
    for index, line in enumerate(bad):  # spread over the file
        lines.insert((index * 7) % (len(lines) + 1), line)
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_over_the_reject_threshold_one_message_names_the_worst_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _lines_with_bad(folder / "cluster_0.jsonl", 90, [b'{"thread": ['] * 10)                      # 10%
    _lines_with_bad(folder / "cluster_1.jsonl", 60, [b""] * 25 + [b"[]"] * 10 + [b"a,b,c"] * 5)  # 40%, the worst
    _lines_with_bad(folder / "cluster_2.jsonl", 100, [])
    with pytest.raises(InstructError) as failure:
        run_pipeline(tmp_path, f"source.path={folder}", "mix=none")
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"{folder / 'cluster_1.jsonl'}: 40 of 100 lines rejected (40.0% > "
                               f"source.max_reject_fraction=0.05) (1 more file(s) over the limit)")
    assert "top reasons: blank line (25); empty thread (10); invalid JSON: unexpected character" in message
    assert not any(is_complete(d) for d in (tmp_path / "out").iterdir())
    # The rejects are readable in the failed run's own folder, which the message names; no empty folder is left.
    [run_dir] = (tmp_path / "out").iterdir()
    assert message.endswith(f"Every rejected line is in {run_dir / 'rejects.jsonl'}")
    rejects = read_jsonl(run_dir / "rejects.jsonl")
    assert len(rejects) == 10 + 40 and {r["file"] for r in rejects} == {str(folder / "cluster_0.jsonl"),
                                                                        str(folder / "cluster_1.jsonl")}
    assert not [d for d in run_dir.rglob("*") if d.is_dir() and not any(d.iterdir())]
    assert "incomplete" in (run_dir / "README.md").read_text()


def test_a_run_at_the_threshold_succeeds_and_one_line_more_fails(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _lines_with_bad(folder / "cluster_0.jsonl", 95, [b"[]"] * 5)  # exactly 5% of 100
    run_dir = run_pipeline(tmp_path, f"source.path={folder}", "mix=none")
    entry = manifest_of(run_dir)["inputs"]["clusters"][0]
    assert (entry["rejected"], entry["used"]) == (5, 95)
    _lines_with_bad(folder / "cluster_0.jsonl", 94, [b"[]"] * 6)  # 6%
    with pytest.raises(InstructError, match=r"cluster_0\.jsonl: 6 of 100 lines rejected"):
        run_pipeline(tmp_path, f"source.path={folder}", "mix=none")


def test_a_capped_run_on_a_wrong_shape_still_fails(tmp_path):
    """The share is of the lines parsed: 10,000 sampled out of a 2,000-line CSV must not dilute it."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "cluster_0.jsonl").write_bytes(b"".join(b"user,text,%d\n" % n for n in range(2000)))
    with pytest.raises(InstructError, match=r"50 of 50 lines rejected \(100\.0%"):
        run_pipeline(tmp_path, f"source.path={folder}", "source.max_chains_per_cluster=50", "mix=none")


def test_cli_prints_the_threshold_failure_as_one_error_line(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _lines_with_bad(folder / "cluster_0.jsonl", 50, [b"{"] * 50)
    code, stderr = finish(cli(f"source.path={folder}", f"output_root={tmp_path / 'out'}", "mix=none"))
    assert code == 2
    [line] = error_lines(stderr)
    assert f"{folder / 'cluster_0.jsonl'}: 50 of 100 lines rejected" in line and "top reasons: invalid JSON" in line


# --- killed and resumed -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    return write_clusters(tmp_path_factory.mktemp("clusters") / "in", clusters=4, lines=3000, bad_every=500)


RUN_ARGS = ("split.validation_fraction=0.1",)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, big_input) -> Path:
    """An uninterrupted run of the same config on the same inputs."""
    out = tmp_path_factory.mktemp("reference")
    code, stderr = finish(cli(f"source.path={big_input}", f"output_root={out}", *RUN_ARGS))
    assert code == 0, stderr
    [run_dir] = run_dirs(out)
    assert is_complete(run_dir) and manifest_of(run_dir)["counts"]["rejected"] == 4 * 6
    return run_dir


def _wait_for(condition, process: subprocess.Popen, what: str) -> None:
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before {what}; make the input larger")
        time.sleep(0.002)


def _kill(process: subprocess.Popen) -> None:
    # The whole process group: pool workers die with the run, as under a scheduler's kill or the OOM killer.
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it was killed"


def _finished_states(run_dir: Path) -> list[Path]:
    return sorted((run_dir / ".state").glob("cluster_*.json"))


KILL_POINTS = {
    # After the first cluster is recorded as finished: the resume must keep it and redo only the rest.
    "after a finished cluster": (1, lambda d: bool(d and _finished_states(d))),
    # Inside a shard, with pool workers writing part files.
    "mid-shard with workers": (2, lambda d: bool(d and any((d / ".parts").glob("*.jsonl")))),
    # At a random early moment once the run folder exists (seeded, so the delay is the same in every CI run).
    "at a random early time": (1, "random"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_leaves_nothing_complete_and_resume_gives_the_same_bytes(tmp_path, big_input, reference, point):
    workers, condition = KILL_POINTS[point]
    out = tmp_path / "out"
    process = cli(f"source.path={big_input}", f"output_root={out}", f"workers={workers}", *RUN_ARGS,
                  start_new_session=True)
    current = lambda: (run_dirs(out) or [None])[0]  # noqa: E731
    if condition == "random":
        _wait_for(lambda: current() is not None, process, "its run folder appeared")
        time.sleep(random.Random(6).uniform(0.0, 0.3))
    else:
        _wait_for(lambda: condition(current()), process, point)
    _kill(process)

    [run_dir] = run_dirs(out)
    assert not is_complete(run_dir)
    manifest = run_dir / "manifest.json"
    assert not manifest.exists() or orjson.loads(manifest.read_bytes()).get("complete") is not True
    kept = {p.stem: (run_dir / "train" / f"{p.stem}.jsonl").stat() for p in _finished_states(run_dir)}
    if point == "after a finished cluster":
        assert 1 <= len(kept) < 4

    # Nothing else that matters on the command line: the run uses its own saved config.
    code, stderr = finish(cli(f"resume={run_dir}", f"output_root={out}"))
    assert code == 0, stderr
    assert run_dirs(out) == [run_dir] and is_complete(run_dir)
    assert data_files(run_dir) == data_files(reference)
    resumed, original = manifest_of(run_dir), manifest_of(reference)
    for key in ("version_id", "inputs", "outputs", "counts"):  # the version id covers the config
        assert resumed[key] == original[key], key
    for cluster, before in kept.items():  # finished clusters were not written again
        after = (run_dir / "train" / f"{cluster}.jsonl").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), cluster
    assert not (run_dir / ".parts").exists() and not (run_dir / ".state").exists()
    assert not list(run_dir.rglob("*.tmp"))


def _interrupted_copy(tmp_path: Path, big_input: Path, *args: str) -> tuple[Path, Path]:
    """A run killed after its first cluster finished, on a private copy of the input."""
    folder = tmp_path / "in"
    folder.mkdir()
    for path in big_input.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    process = cli(f"source.path={folder}", f"output_root={out}", *RUN_ARGS, *args, start_new_session=True)
    _wait_for(lambda: bool(run_dirs(out) and _finished_states(run_dirs(out)[0])), process, "a cluster finished")
    _kill(process)
    return folder, run_dirs(out)[0]


def test_resume_uses_the_runs_own_task_mix_not_the_default_one(tmp_path, big_input):
    """Started with tasks=paper; resumed by a command that composes another mix (persona, as a default or a
    shell alias might). Merging the command's config into the saved one used to add the command's tasks to
    the run's (a crash, or a version mismatch), so such a resume could never finish the run."""
    _, run_dir = _interrupted_copy(tmp_path, big_input, "tasks=paper")
    code, stderr = finish(cli(f"resume={run_dir}", f"output_root={tmp_path / 'out'}", "workers=2", "tasks=persona"))
    assert code == 0, stderr
    manifest = manifest_of(run_dir)
    assert manifest["choices"]["tasks"] == ["needle", "keyword_post", "completion"]
    assert manifest["config"]["workers"] == 2  # how it executes may change on resume


def test_resume_refuses_when_an_input_changed_and_names_it(tmp_path, big_input):
    folder, run_dir = _interrupted_copy(tmp_path, big_input)
    with open(folder / "cluster_2.jsonl", "ab") as handle:
        handle.write(b'[{"user_id": "a", "text": "one more line"}]\n')
    code, stderr = finish(cli(f"resume={run_dir}", f"output_root={tmp_path / 'out'}"))
    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith(f"error: cannot resume {run_dir}: the input files (cluster_2) changed since it started")
    assert not is_complete(run_dir)


def test_resume_of_a_complete_run_or_of_no_run_says_so(tmp_path, reference):
    code, stderr = finish(cli(f"resume={reference}", f"output_root={tmp_path}"))
    assert code == 2 and error_lines(stderr) == [f"error: {reference} is already complete; nothing to resume"]
    code, stderr = finish(cli(f"resume={tmp_path}", f"output_root={tmp_path}"))
    assert code == 2
    [line] = error_lines(stderr)
    assert line.startswith(f"error: cannot resume {tmp_path}: no .hydra/config.yaml")


def test_a_full_disk_fails_in_one_line_with_no_manifest_and_the_run_resumes(tmp_path, big_input, reference):
    """RLIMIT_FSIZE makes any write past 64 KB fail as a full disk would (EFBIG instead of ENOSPC)."""
    out = tmp_path / "out"

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, 64_000))

    code, stderr = finish(cli(f"source.path={big_input}", f"output_root={out}", *RUN_ARGS, preexec_fn=small_disk))
    assert code == 2
    [run_dir] = run_dirs(out)
    [line] = error_lines(stderr)
    assert line.startswith(f"error: cannot write in {run_dir}") and "File too large" in line
    assert f"resume={run_dir}" in line
    assert not list(out.rglob("manifest.json")) and not list(out.rglob(".manifest.json.tmp"))
    code, stderr = finish(cli(f"resume={run_dir}", f"output_root={out}"))
    assert code == 0, stderr
    assert data_files(run_dir) == data_files(reference)


# --- run folders --------------------------------------------------------------------------------------------

def test_runs_started_in_the_same_second_never_share_a_folder(tmp_path):
    now = datetime(2026, 1, 2, 3, 4, 5)
    made = [create_run_dir(tmp_path, "abcd1234", now=now) for _ in range(3)]
    assert [p.name for p in made] == ["2026-01-02_03-04-05_abcd1234", "2026-01-02_03-04-05-2_abcd1234",
                                      "2026-01-02_03-04-05-3_abcd1234"]
    racing: list[Path] = []
    threads = [threading.Thread(target=lambda: racing.append(create_run_dir(tmp_path, "ffff0000", now=now)))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(racing)) == 16 and all(p.is_dir() for p in racing)


def test_an_unusable_output_folder_fails_in_one_line_before_anything_is_written(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file where a folder should be")
    code, stderr = finish(cli(f"output_root={blocker}/sub"))
    assert code == 2
    assert error_lines(stderr) == [f"error: cannot create output folder {blocker}/sub/default: {blocker} is a file, "
                                   f"not a folder (set output_root=… to a writable folder)"]
    code, stderr = finish(cli(f"output_root={blocker}/sub", "-m", "seed=1,2"))
    assert code == 2 and len(error_lines(stderr)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    # The same from the library (no Hydra): the parent of the run folders cannot be created.
    with pytest.raises(InstructError, match=f"cannot create output folder {blocker}/sub"):
        generate(compose_config("progress=false"), blocker / "sub")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# --- paths in the data --------------------------------------------------------------------------------------

def test_paths_in_the_data_never_decide_where_files_are_written(tmp_path):
    base = tmp_path / "deep" / "er"
    folder = base / "in"
    folder.mkdir(parents=True)
    records = _sample_records()
    evil = ["../../evil", "/tmp/evil_abs", "..", "train/../../../evil", "cluster_0/../../evil\x00"]
    lines = []
    for n, name in enumerate(evil * 4):
        thread = [dict(m, user_id=name) for m in records[n]["thread"]]
        lines.append(orjson.dumps({"thread": thread, "cluster_id": name, "id": name}))
    (folder / "cluster_0.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "cluster_..jsonl").write_bytes(b"\n".join(lines) + b"\n")  # a legal, odd file name
    before = {p for p in tmp_path.rglob("*")}
    run_dir = generate(compose_config("progress=false", f"source.path={folder}"), base / "out")
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p == base / "out" or run_dir in (p, *p.parents) for p in created), sorted(created)
    assert not Path("/tmp/evil_abs").exists() and not any("evil" in p.name for p in created)
    rows = read_jsonl(run_dir / "train" / "cluster_0.jsonl")
    assert {r["meta"]["thread_id"] for r in rows if r["task"] != "dolly"} <= set(evil)  # kept as data


def test_an_interrupted_run_is_visibly_incomplete_and_its_resume_times_only_its_own_threads(tmp_path, big_input):
    datasets = pytest.importorskip("datasets")
    _, run_dir = _interrupted_copy(tmp_path, big_input)
    finished = {p.stem for p in _finished_states(run_dir)}
    assert finished and list((run_dir / "train").glob("cluster_*.jsonl")), "some clusters are on disk"
    with pytest.raises(Exception, match="No \\(supported\\) data files found"):  # no silent partial dataset
        datasets.load_dataset(str(run_dir), cache_dir=str(tmp_path / "hf"))
    assert (run_dir / "README.md").read_text().splitlines()[8].endswith("incomplete")
    show = subprocess.run([sys.executable, "-m", "instruct", "show", str(run_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert show.returncode == 2 and show.stderr.startswith(f"error: {run_dir} is an incomplete run")
    anyway = subprocess.run([sys.executable, "-m", "instruct", "show", str(run_dir), "--incomplete", "-n", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert anyway.returncode == 0 and anyway.stderr.startswith("warning:") and "prompt:" in anyway.stdout

    code, stderr = finish(cli(f"resume={run_dir}", f"output_root={tmp_path / 'out'}"))
    assert code == 0, stderr
    manifest = manifest_of(run_dir)
    assert set(manifest["timing"]["resumed_clusters"]) == finished
    read_now = sum(c["used"] for c in manifest["inputs"]["clusters"] if c["cluster"] not in finished)
    assert read_now < manifest["counts"]["threads_used"]
    assert manifest["timing"]["threads_per_second"] == pytest.approx(read_now / manifest["timing"]["seconds"], rel=1e-3)
    assert datasets.load_dataset(str(run_dir), cache_dir=str(tmp_path / "hf2"))["train"].num_rows == \
        manifest["counts"]["rows_by_split"]["train"]
