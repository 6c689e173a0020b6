"""``python -m instruct show`` prints rows readably, for any format, and refuses what is not a finished run."""

from __future__ import annotations

import pytest
from conftest import read_jsonl, run_pipeline

from instruct.show import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("show")
    return {fmt: run_pipeline(base / fmt, f"output={fmt}", "card.chart=false") for fmt in ("messages", "blueprint")}


def test_it_prints_n_rows_of_one_task_with_their_lineage(runs, capsys):
    assert main([str(runs["messages"]), "--task", "completion", "-n", "2", "--max-chars", "0"]) == 0
    out = capsys.readouterr().out
    first = next(r for r in read_jsonl(runs["messages"] / "train" / "cluster_0.jsonl") if r["task"] == "completion")
    assert out.count("── completion") == 2 and "── needle" not in out
    assert f"{first['meta']['cluster']} line {first['meta']['line']}" in out.split("\n\n")[0]
    assert "  │ " + first["messages"][1]["content"].splitlines()[0] in out


def test_blueprint_rows_are_shown_with_their_sidecar_lineage(runs, capsys):
    assert main([str(runs["blueprint"]), "--task", "dolly", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("── dolly") and '{"text":' in out


def test_long_fields_are_cut_and_say_by_how_much(runs, capsys):
    assert main([str(runs["messages"]), "--task", "needle", "-n", "1", "--max-chars", "50"]) == 0
    assert "more characters]" in capsys.readouterr().out


def test_an_unknown_task_or_a_folder_that_is_not_a_run_is_an_error(runs, tmp_path, capsys):
    assert main([str(runs["messages"]), "--task", "nope"]) == 1
    assert "no train rows of task 'nope'" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err
