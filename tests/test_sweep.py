"""A sweep through the submitit launcher (hydra/launcher=submitit_slurm on a cluster) runs one job per sweep
point and still writes sweep_summary.csv; here with the plugin's submitit_local launcher, which runs the same
job code as separate processes on this machine."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, data_files, manifest_of, run_pipeline


def test_a_submitit_sweep_runs_one_job_per_point_and_writes_the_summary(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run([sys.executable, "run.py", "-m", "hydra/launcher=submitit_local",
                             "mix.dolly_fraction=0.1,0.3", "source.max_chains_per_cluster=40",
                             f"hydra.sweep.dir={sweep}", "progress=false"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    jobs = [folder for folder in (sweep / ".submitit").iterdir() if folder.name.isdigit()]  # one per job id
    assert len(jobs) == 2, "one submitit job per sweep point"
    assert all(list(job.glob("*_result.pkl")) for job in jobs), "a job did not finish"
    with open(sweep / "sweep_summary.csv", newline="", encoding="utf-8") as handle:
        summary = list(csv.DictReader(handle))
    assert [row["job"] for row in summary] == ["0", "1"]
    assert [float(row["requested_dolly_fraction"]) for row in summary] == [0.1, 0.3]
    for row, fraction in zip(summary, ("0.1", "0.3")):
        run_dir = Path(row["path"])
        assert manifest_of(run_dir)["complete"] and int(row["rows"]) == manifest_of(run_dir)["counts"]["rows"]
        # A job writes what the same point writes in this process.
        alone = run_pipeline(tmp_path / fraction, f"mix.dolly_fraction={fraction}", "source.max_chains_per_cluster=40")
        assert data_files(run_dir) == data_files(alone)
