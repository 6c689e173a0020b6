"""The per-shard loop builds only what the chosen task mix needs."""

from __future__ import annotations

from conftest import data_files, run_pipeline

import instruct.worker
from instruct.feed import Feed


def test_no_feed_is_built_when_no_task_looks_back(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(instruct.worker, "Feed", lambda lookback: built.append(lookback) or Feed(lookback))
    run_pipeline(tmp_path / "lean", "preset=paper", "tasks.needle.weight=0")
    assert built == []
    run_pipeline(tmp_path / "needle", "preset=paper")
    assert built and all(lookback > 0 for lookback in built)


def test_a_mix_without_look_back_writes_the_same_rows_as_before(tmp_path, monkeypatch):
    """The same bytes whether the worker keeps a (unread) feed or none: forcing one in changes nothing."""
    lean = data_files(run_pipeline(tmp_path / "lean", "preset=paper", "tasks.needle.weight=0"))
    monkeypatch.setattr(instruct.worker.Setup, "lookback", property(lambda self: 1))
    with_feed = data_files(run_pipeline(tmp_path / "feed", "preset=paper", "tasks.needle.weight=0"))
    assert lean == with_feed
