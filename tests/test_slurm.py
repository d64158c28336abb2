"""Scale-out on a real Slurm (issue 27): a one-node cluster on this machine (``scripts/slurm-local.sh``:
munged, slurmctld, slurmd -- the daemons a cluster runs) and the grid submitted to it through
``--backend dask --cluster slurm``. Skipped, with the reason, where Slurm is not installed (``.ci/run``
installs it where it can: ``scripts/slurm-local.sh install``; a test never downloads).

The controller keeps no accounting database (``sacct`` needs slurmdbd); finished jobs are read from its
job-completion log instead (``JobCompType=jobcomp/filetxt``), which records the same fields.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
pytestmark = pytest.mark.slurm


def _run(cmd, env, timeout=600, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)


def _answers(env) -> bool:
    """Whether a controller answers ``sinfo``. Without its slurm.conf (a fresh machine: ``start`` writes
    it) sinfo retries for 60 s instead of failing, so the fixture asks only where the file is."""
    try:
        return _run(["sinfo", "-h"], env, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def slurm():
    """The environment of a running one-node cluster (started here and stopped after, unless one was)."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.skip("Slurm is not installed (scripts/slurm-local.sh install, as root, installs slurm-wlm and munge)")
    env = {**os.environ, "SLURM_LOCAL_NO_INSTALL": "1"}
    conf = _run([str(SCRIPT), "env"], env).stdout.strip().split("=", 1)[1]
    env["SLURM_CONF"] = conf
    already = Path(conf).is_file() and _answers(env)      # a controller answers: not ours to stop
    if not already:
        out = _run([str(SCRIPT), "start"], env, timeout=180)
        if out.returncode != 0:
            pytest.skip(f"a local Slurm cluster could not be started: {(out.stderr or out.stdout).strip()[-300:]}")
    yield env
    if not already:
        _run([str(SCRIPT), "stop"], env, timeout=60)


def _jobcomp(env) -> dict[int, dict[str, str]]:
    """Finished jobs by id, each the ``key=value`` fields of its job-completion record."""
    conf = Path(env["SLURM_CONF"]).read_text()
    path = Path(re.search(r"^JobCompLoc=(.+)$", conf, re.M).group(1))
    jobs = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs[int(fields["JobId"])] = fields
    return jobs


def _job_ids(results: Path) -> list[int]:
    """The Slurm jobs a run's workers ran in (their output files: ``<results>/slurm-logs``)."""
    return sorted({int(m.group(1)) for p in (results / "slurm-logs").glob("dask-worker-*.out")
                   if (m := re.search(r"-(\d+)\.out$", p.name))})


def _wait_finished(env, ids, timeout=120) -> dict[int, dict[str, str]]:
    """The completion records of ``ids`` once every one of them is written."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = _jobcomp(env)
        if all(i in done for i in ids):
            return {i: done[i] for i in ids}
        time.sleep(1)
    raise AssertionError(f"jobs {ids} have no completion record after {timeout} s")


def _reproduce(args, env, cwd, timeout=900):
    return _run([sys.executable, str(ROOT / "reproduce.py"), *args, "--no-progress"], env, timeout=timeout, cwd=cwd)


SLURM = ["--backend", "dask", "--cluster", "slurm", "--slurm-cores", "1", "--slurm-memory", "2GB",
         "--slurm-gpus", "0"]


def test_a_grid_on_slurm_equals_loky_to_the_bit_and_its_jobs_ask_what_was_requested(slurm, tmp_path):
    grid = ["--dataset", "stoic", "--method", "stl", "--method", "hps", "--profile", "smoke", "--seeds", "0"]
    run = _reproduce(grid + SLURM + ["--jobs", "2", "--slurm-walltime", "00:05:00", "--results",
                                     str(tmp_path / "slurm")], slurm, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    local = _reproduce(grid + ["--jobs", "2", "--results", str(tmp_path / "loky")], slurm, cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-2000:]
    for name in ("metrics.csv", "cases.csv"):
        assert (tmp_path / "slurm" / name).read_bytes() == (tmp_path / "loky" / name).read_bytes(), name
    # the run's jobs (submitted from tmp_path): two asked for; the grid may end before the second is
    # scheduled (Slurm starts a pending job at its next scheduling pass), which cancels it unstarted
    deadline = time.time() + 120
    while len(jobs := [j for j in _jobcomp(slurm).values() if j["WorkDir"] == str(tmp_path)]) < 2:
        assert time.time() < deadline, jobs
        time.sleep(1)
    assert len(jobs) == 2 and any(j["NodeCnt"] == "1" for j in jobs), jobs
    for job in jobs:
        assert job["Name"] == "dask-worker" and job["TimeLimit"] == "5", job           # minutes
        assert "cpu=1" in job["Tres"] and "mem=2G" in job["Tres"], job     # what was asked, started or not
        assert job["ProcCnt"] == ("1" if job["NodeCnt"] == "1" else "0"), job   # a job cancelled unstarted had none


def _status_epoch(results: Path) -> int:
    for path in results.rglob("status.json"):
        try:
            return json.loads(path.read_text())["epoch"]
        except (OSError, ValueError, KeyError):
            return 0
    return 0


def test_a_cancelled_worker_job_is_replaced_and_its_cell_resumes_from_its_checkpoint(slurm, tmp_path):
    cell = ["--dataset", "stoic", "--method", "hps", "--no-baseline", "--profile", "smoke", "--set", "epochs=16",
            "--seeds", "0", "--checkpoint-every", "0"]
    results = tmp_path / "slurm"
    proc = subprocess.Popen([sys.executable, str(ROOT / "reproduce.py"), *cell, *SLURM, "--jobs", "1",
                             "--slurm-walltime", "00:10:00", "--results", str(results), "--no-progress"],
                            env=slurm, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while _status_epoch(results) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None and _status_epoch(results) >= 3, "the cell never reached epoch 3 on its job"
    first = _job_ids(results)
    assert len(first) == 1
    subprocess.run(["scancel", str(first[0])], env=slurm, check=True)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:]
    ids = _job_ids(results)
    assert len(ids) == 2 and ids[0] == first[0], ids                      # a new job replaced the cancelled one
    jobs = _wait_finished(slurm, ids)
    assert jobs[first[0]]["JobState"] == "CANCELLED"
    resumed = (results / "slurm-logs" / f"dask-worker-{ids[1]}.out").read_text()
    assert re.search(r"\[resume\] .*checkpoints/joint: resuming at epoch \d+ of 16", resumed), resumed[-2000:]
    # nothing lost or duplicated, and the numbers of an uninterrupted run
    epochs = pd.read_csv(results / "epochs.csv")
    assert sorted(epochs["epoch"].unique()) == list(range(16)) and (epochs.groupby("epoch").size() == 2).all()
    straight = _reproduce(cell + ["--jobs", "1", "--results", str(tmp_path / "straight")], slurm, cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    for name in ("metrics.csv", "cases.csv"):
        assert (results / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name


PACED = """
import time
from benchmark.plugins import register_weighting
from benchmark.training.weighting.ew import EW
from benchmark.training.weighting.catalog import WeightingInfo


class Paced(EW):
    \"\"\"Equal weights, and a pause at the start of every epoch: a cell whose length is its epoch count.\"\"\"

    name = "paced"

    def __init__(self, n_tasks, pause=2.0):
        super().__init__(n_tasks)
        self.pause = pause

    def start_epoch(self, epoch):
        time.sleep(self.pause)


register_weighting(WeightingInfo("paced", "Paced", "loss", "EW with a pause per epoch (test_slurm)",
                                 (("pause", 2.0),)), Paced)
"""


def test_a_walltime_shorter_than_a_cell_resumes_in_the_next_job(slurm, tmp_path):
    """Slurm's shortest walltime is a minute: a cell that outlasts it ends its first job in TIMEOUT and
    finishes in a later one. Sizing the cell from a probe's epoch time failed both ways (a worker job's
    epochs ran 1x-2.3x the probe's: once a cell finished inside its first job, once it took 7 jobs), so the
    cell is paced by a test plug-in: 40 epochs of a 2 s pause and ~1 s of training are ~120 s, past a
    1-minute limit even as Slurm enforces it (on a timer, up to ~30 s late) and done in 2-3 jobs."""
    (tmp_path / "paced.py").write_text(PACED)
    n = 40
    results = tmp_path / "slurm"
    # a checkpoint every 5 s, not every epoch: saving the state each epoch would double a smoke epoch
    run = _reproduce(["--plugin", str(tmp_path / "paced.py"), "--dataset", "stoic", "--method", "hps", "--no-baseline",
                      "--weighting", "paced", "--profile", "smoke", "--seeds", "0", "--set", f"epochs={n}",
                      "--checkpoint-every", "5", *SLURM, "--jobs", "1", "--slurm-walltime", "00:01:00",
                      "--results", str(results)], slurm, cwd=tmp_path, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    ids = _job_ids(results)
    jobs = _wait_finished(slurm, ids)
    assert len(ids) >= 2 and jobs[ids[0]]["JobState"] == "TIMEOUT", jobs
    later = "".join((results / "slurm-logs" / f"dask-worker-{i}.out").read_text() for i in ids[1:])
    assert re.search(rf"\[resume\] .*resuming at epoch \d+ of {n}", later)
    epochs = pd.read_csv(results / "epochs.csv")
    assert sorted(epochs["epoch"].unique()) == list(range(n)) and (epochs.groupby("epoch").size() == 2).all()
    assert len(pd.read_csv(results / "metrics.csv").query("split == 'test'")) == 2        # the cell, once


def test_two_runners_in_two_sbatch_jobs_compute_each_cell_once(slurm, tmp_path):
    results = tmp_path / "shared"
    command = (f"{sys.executable} {ROOT / 'reproduce.py'} --dataset stoic --method stl --method hps --profile smoke "
               f"--seeds 0 1 --jobs 1 --no-progress --no-report --results {results}")
    ids = []
    for k in range(2):
        out = _run(["sbatch", "--parsable", "-c", "1", "--mem", "2G", "-t", "00:10:00", "-J", f"runner{k}",
                    "-o", str(tmp_path / f"runner{k}.log"), "--wrap", command], slurm, timeout=60, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        ids.append(int(out.stdout.strip().split(";")[0]))
    jobs = _wait_finished(slurm, ids, timeout=600)
    assert all(j["JobState"] == "COMPLETED" for j in jobs.values()), jobs
    finished = [re.findall(r"^\[synthetic\] (\S+ seed \d+): finished", (tmp_path / f"runner{k}.log").read_text(), re.M)
                for k in range(2)]
    cells = {"stoic/stl seed 0", "stoic/stl seed 1", "stoic/hps seed 0", "stoic/hps seed 1"}
    assert sorted(finished[0] + finished[1]) == sorted(cells), finished          # each computed once, by one
    test = pd.read_csv(results / "metrics.csv").query("split == 'test' and primary")
    assert len(test) == 8 and not test.duplicated(["method", "seed", "task"]).any()     # 4 cells x 2 tasks


def test_a_request_the_cluster_cannot_satisfy_is_one_error_before_any_cell(slurm, tmp_path):
    cores = os.cpu_count() + 2
    run = _reproduce(["--dataset", "stoic", "--method", "hps", "--no-baseline", "--profile", "smoke", "--seeds", "0",
                      *SLURM, "--slurm-cores", str(cores), "--jobs", "1", "--slurm-walltime", "00:05:00",
                      "--results", str(tmp_path / "res")], slurm, cwd=tmp_path, timeout=300)
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--cpus-per-task={cores}" in errors[0], run.stderr[-2000:]
    assert "Requested node configuration is not available" in errors[0]
    assert "Traceback" not in run.stderr and not (tmp_path / "res" / "metrics.csv").exists()
    assert _run(["squeue", "-h"], slurm, timeout=30).stdout.strip() == ""          # no job left pending
