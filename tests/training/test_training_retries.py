"""Through Dagster: a transient training failure (a full disk) is retried and the retry resumes from
the checkpoint; a deliberate stop is not retried; a second attempt while another process holds the
checkpoints fails at once, naming it, and trains normally once that process is dead. The real
ComputeSettings.train and worker, in process and through a real Pipes subprocess (forked from the
warm trainer server, and a fresh interpreter)."""

import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from toy_data import toy_dataset

from assets.common.locks import FOLDER_LOCK, lock_holder
from assets.settings.training import QLoraConfig
from assets.training.recipe import TrainingTimeLimit, train_qlora
from assets.training.worker import attempt_files, run_request, write_request
from resources.compute import ComputeSettings

pytestmark = pytest.mark.integration  # Dagster runs, Pipes subprocesses

CONFIG = dict(max_steps=4, batch_size=4, logging_steps=1, save_steps=2)
DOMAINS = dg.StaticPartitionsDefinition(["d1"])


def training_asset(tmp_path, base, data, config, fault=None):
    """A step that trains like qlora_adapter: one request per attempt, ComputeSettings.train, a retry policy."""

    @dg.asset(partitions_def=DOMAINS, retry_policy=dg.RetryPolicy(max_retries=1))
    def adapter(context: dg.AssetExecutionContext, compute: ComputeSettings, pipes_subprocess_client: dg.PipesSubprocessClient):
        checkpoints, attempt = tmp_path / "ckpt", f"{context.run_id[:8]}-{context.retry_number}"
        request, report, error = attempt_files(checkpoints, attempt)
        staging = tmp_path / f"adapter-{attempt}"
        if fault == "disk_full" and context.retry_number == 0:
            staging.mkdir()
            (staging / "adapter_config.json").symlink_to("/dev/full")  # saving the adapter hits ENOSPC
        write_request(request, base, data, staging, checkpoints, config, "cpu", report, error, context.partition_key, attempt)
        result = compute.train(context, pipes_subprocess_client, request, run_in_process=run_request)
        return dg.MaterializeResult(metadata={"resumed_from": result["resumed_from"] or "-"})

    return adapter


def materialize(asset, launcher):
    # "subprocess" forks from the warm trainer server (the default on a Linux CPU); "cold" starts a fresh interpreter.
    compute = ComputeSettings(training_launcher="subprocess", warm_trainer=False) if launcher == "cold" else ComputeSettings(training_launcher=launcher)
    resources = {"compute": compute, "pipes_subprocess_client": dg.PipesSubprocessClient()}
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], instance=instance, resources=resources, partition_key="d1", raise_on_error=False)
        logs = [e.message or "" for e in instance.all_logs(result.run_id)]
    # Dagster wraps the step's own failure (RetryRequestedFromPolicy, "Exceeded max_retries"): read the causes too.
    retries = [said(e.event_specific_data.error) for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    failures = [said(e.step_failure_data.error) for e in result.get_step_failure_events()]
    return result, retries, failures, logs


def said(error) -> str:
    return error.message + (said(error.cause) if error.cause else "")


@pytest.fixture
def data(tmp_path):
    toy_dataset(40).save_to_disk(str(tmp_path / "train"))
    return tmp_path / "train"


@pytest.mark.parametrize("launcher", ["in_process", "subprocess", "cold"])
def test_a_full_disk_is_retried_and_the_retry_resumes(tiny_base, tmp_path, data, launcher):
    result, retries, failures, _ = materialize(training_asset(tmp_path, tiny_base, data, CONFIG, fault="disk_full"), launcher)
    assert result.success, failures
    assert len(retries) == 1 and "Failure: domain 'd1': training failed: OSError: [Errno 28] No space left on device" in retries[0]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["resumed_from"].value.endswith("step-00000002")  # the first attempt's checkpoint


@pytest.mark.parametrize("launcher", ["in_process", "subprocess", "cold"])
def test_a_deliberate_stop_is_not_retried(tiny_base, tmp_path, launcher):
    toy_dataset(3).save_to_disk(str(tmp_path / "tiny"))
    result, retries, failures, _ = materialize(training_asset(tmp_path, tiny_base, tmp_path / "tiny", CONFIG | {"batch_size": 8}), launcher)
    assert not result.success and retries == []
    assert "Failure: domain 'd1': training stopped: DatasetTooSmall: the training split has 3 examples" in failures[0]


HOLDER = """
import sys, time
from pathlib import Path
from assets.training.checkpoint import claim_checkpoints
with claim_checkpoints(Path(sys.argv[1]), attempt="orphan", domain="d1"):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_attempt_fails_fast_and_one_after_the_holder_died_resumes(tiny_base, tmp_path, data):
    checkpoints = tmp_path / "ckpt"
    # An earlier run that stopped at its time limit left the checkpoint of step 1.
    with pytest.raises(TrainingTimeLimit):
        train_qlora(tiny_base, toy_dataset(40), tmp_path / "first", checkpoints, QLoraConfig(**CONFIG | {"max_train_minutes": 1e-6}), "cpu", log=lambda _: None)
    # A trainer left running after its step process was killed: a live process holding the checkpoints.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(checkpoints)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert lock_holder(checkpoints / FOLDER_LOCK)["pid"] == holder.pid
        result, retries, failures, _ = materialize(training_asset(tmp_path, tiny_base, data, CONFIG), "in_process")
        busy = f"Failure: domain 'd1': another attempt is training domain 'd1' on these inputs (pid {holder.pid}, attempt orphan"
        assert not result.success and busy in retries[0] and busy in failures[0]  # retriable, retried, still busy
        assert sorted(p.name for p in checkpoints.glob("step-*")) == ["step-00000001"]  # nothing of it touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 30  # the kernel drops the lock with the process
    while lock_holder(checkpoints / FOLDER_LOCK) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    result, retries, failures, logs = materialize(training_asset(tmp_path, tiny_base, data, CONFIG), "in_process")
    assert result.success and retries == [], failures
    assert any(m.startswith(f"resuming from checkpoint {checkpoints / 'step-00000001'}") for m in logs)
