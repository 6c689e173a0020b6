"""The train/validation split is decided per thread before tasks run: every row built from a thread —
haystacks that contain it included — lands on one side."""

from __future__ import annotations

from conftest import manifest_of, read_jsonl, run_pipeline


def rows_by_split(run):
    return {split: [row for path in sorted((run / split).glob("cluster_*.jsonl"))
                    for row in read_jsonl(path)] for split in ("train", "validation")}


def test_no_thread_on_both_sides_counting_haystack_members(tmp_path, shared_sample):
    run = run_pipeline(tmp_path, f"source.path={shared_sample / 'released'}", "tasks=paper",
                       "split.validation_fraction=0.3", "mix=none", "tasks.needle.weight=3")
    rows = rows_by_split(run)
    assert rows["train"] and rows["validation"]
    members = {split: {tid for row in split_rows for tid in row["meta"]["thread_ids"]}
               for split, split_rows in rows.items()}
    assert not members["train"] & members["validation"]
    assert any(len(row["meta"]["thread_ids"]) > 1 for row in rows["validation"]), "validation has haystacks"
    share = len(members["validation"]) / (len(members["train"]) + len(members["validation"]))
    assert 0.2 < share < 0.4


def test_dolly_rows_split_per_row_and_never_repeat_across_sides(tmp_path, dolly_file):
    run = run_pipeline(tmp_path, "split.validation_fraction=0.25", f"dolly.path={dolly_file}")
    rows = rows_by_split(run)
    dolly = {split: {row["meta"]["line"] for row in split_rows if row["task"] == "dolly"} for split, split_rows in rows.items()}
    assert dolly["train"] and dolly["validation"] and not dolly["train"] & dolly["validation"]
    outputs = manifest_of(run)["outputs"]
    assert set(outputs) == {f"{s}/cluster_{c}.jsonl" for s in ("train", "validation") for c in (0, 1)}


def test_blueprint_format_keeps_lineage_in_a_parallel_meta_file(tmp_path):
    run = run_pipeline(tmp_path, "output=blueprint", "split.validation_fraction=0.2")
    for split in ("train", "validation"):
        for data in (run / split).glob("cluster_?.jsonl"):
            rows = read_jsonl(data)
            metas = read_jsonl(run / "meta" / split / data.name)
            assert len(rows) == len(metas)
            assert all(meta["split"] == split for meta in metas)
