"""A real training process killed with SIGKILL resumes from its last checkpoint and ends with the
adapter of an uninterrupted run; the same step runs data-parallel under torchrun with the same result."""

import os
import signal
import subprocess
import sys
import time

import pytest
from numerics import bf16_tolerance
from safetensors.torch import load_file
from toy_data import toy_dataset

from assets.settings.training import QLoraConfig
from assets.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from assets.training.recipe import train_qlora
from assets.training.worker import write_request

pytestmark = pytest.mark.integration  # worker subprocesses and torchrun

CONFIG = dict(max_steps=40, batch_size=4, save_steps=5, logging_steps=5, lora_dropout=0.1, seed=3)


def worker(request, *launcher):
    command = [*launcher, "-m", "assets.training", str(request)] if launcher else [sys.executable, "-m", "assets.training", str(request)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})


def adapter_weights(path):
    return load_file(path / "adapter_model.safetensors")


def max_difference(a, b):
    a, b = adapter_weights(a), adapter_weights(b)
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])  # pinned: the tolerance depends on it
def test_sigkilled_training_resumes_to_the_uninterrupted_adapter(tiny_base, tmp_path, compute_dtype):
    config = CONFIG | {"compute_dtype": compute_dtype}
    data = tmp_path / "train"
    toy_dataset(80).save_to_disk(str(data))
    reference = tmp_path / "reference"
    train_qlora(tiny_base, toy_dataset(80), reference, tmp_path / "ckpt-ref", QLoraConfig(**config), "cpu", log=lambda _: None)

    adapter, checkpoints = tmp_path / "adapter", tmp_path / "ckpt"
    request = write_request(tmp_path / "request.json", tiny_base, data, adapter, checkpoints, config, "cpu", tmp_path / "report.json")
    process = worker(request)
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("step-*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, process.stderr.read()  # killed mid-run, not finished
    assert not (adapter / "adapter_model.safetensors").exists()
    killed_at = int(sorted(checkpoints.glob("step-*"))[-1].name.removeprefix("step-"))
    assert 5 <= killed_at < 40
    state_at_kill = load_checkpoint(latest_checkpoint(checkpoints))  # for the control below

    again = worker(request)
    _, log = again.communicate(timeout=180)
    assert again.returncode == 0, log
    assert "resuming from checkpoint" in log and f"step {killed_at})" in log
    # A resumed run repeats the uninterrupted one's arithmetic step for step (same data, dropout seeds,
    # kernels): measured identical in both dtypes. fp32: 1e-5. bf16: a rounding that flipped in
    # another process moves a gradient by ~2u of itself, and AdamW, dividing by the gradient's RMS,
    # moves a weight by at most ~lr per step, so by ~2u x lr from the flip: <= 35 steps x 2u x 2e-3
    # = 5.5e-4, under one ulp (2 roundings) of the largest adapter weight (~0.11: 8.9e-4).
    scale = max(w.abs().max().item() for w in adapter_weights(reference).values())
    tolerance = 1e-5 if compute_dtype == "float32" else bf16_tolerance(scale, roundings=2)
    assert max_difference(adapter, reference) < tolerance

    # Control: resuming the weights but not the optimiser's moments (a classic resume bug) ends ~0.035
    # away, ~40x the bf16 tolerance: the check would catch it.
    state_at_kill["optimizer"]["state"] = {}
    save_checkpoint(tmp_path / "ckpt-fresh-moments", killed_at, state_at_kill)
    train_qlora(tiny_base, toy_dataset(80), tmp_path / "fresh-moments", tmp_path / "ckpt-fresh-moments", QLoraConfig(**config), "cpu", log=lambda _: None)
    assert max_difference(tmp_path / "fresh-moments", reference) > 10 * tolerance


def test_torchrun_two_processes_match_one_process(tiny_base, tmp_path):
    data = tmp_path / "train"
    toy_dataset(64).save_to_disk(str(data))
    # One process accumulating 2 micro-batches sees the same step as 2 processes with 1 each.
    # float32, pinned: an exactness test at 1e-5 (bf16 roundings are covered by the resume test).
    single = QLoraConfig(**CONFIG | {"max_steps": 6, "gradient_accumulation": 2, "compute_dtype": "float32"})
    train_qlora(tiny_base, toy_dataset(64), tmp_path / "single", tmp_path / "c1", single, "cpu", log=lambda _: None)

    config = CONFIG | {"max_steps": 6, "gradient_accumulation": 1, "compute_dtype": "float32"}
    request = write_request(tmp_path / "request.json", tiny_base, data, tmp_path / "multi", tmp_path / "c2", config, "cpu", tmp_path / "report.json")
    run = worker(request, sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2")
    _, log = run.communicate(timeout=240)
    assert run.returncode == 0, log
    assert '"world_size": 2' in (tmp_path / "report.json").read_text()
    assert max_difference(tmp_path / "multi", tmp_path / "single") < 1e-5
