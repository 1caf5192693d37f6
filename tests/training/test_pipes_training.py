"""Training through a real Dagster Pipes subprocess: a SIGKILLed trainer fails the step, not the
Dagster process, and the next materialization resumes from its checkpoint; errors arrive with their message."""

import signal
import sys
import threading
import time

import dagster as dg
import psutil
import pytest
from toy_data import toy_dataset

from assets.models.loading import pick_compute_dtype
from assets.training.worker import write_request

pytestmark = pytest.mark.integration  # a Dagster run with a Pipes subprocess

CONFIG = dict(max_steps=40, batch_size=4, save_steps=5, logging_steps=5, seed=5)


def training_asset(request):
    @dg.asset
    def adapter(context: dg.AssetExecutionContext, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
        done = pipes_subprocess_client.run(context=context, command=[sys.executable, "-m", "assets.training", str(request)])
        report = done.get_custom_messages()[-1]
        return dg.MaterializeResult(metadata={"steps": report["steps"], "resumed_from": report["resumed_from"] or "-",
                                              "compute_dtype": report["compute_dtype"]})

    return adapter


def kill_trainer_after_first_checkpoint(checkpoints, killed: list) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        if list(checkpoints.glob("step-*")):
            for child in psutil.Process().children(recursive=True):
                try:
                    if "assets.training" in " ".join(child.cmdline()):
                        child.send_signal(signal.SIGKILL)
                        killed.append(child.pid)
                except psutil.Error:  # a child that ended meanwhile
                    continue
        time.sleep(0.005)


def messages(instance, result):
    return [e.message or "" for e in instance.all_logs(result.run_id)]


def test_a_killed_pipes_trainer_fails_the_step_and_the_next_run_resumes(tiny_base, tmp_path):
    data, checkpoints, adapter = tmp_path / "train", tmp_path / "ckpt", tmp_path / "adapter"
    toy_dataset(80).save_to_disk(str(data))
    request = write_request(tmp_path / "request.json", tiny_base, data, adapter, checkpoints, CONFIG, "cpu", tmp_path / "report.json")
    asset, resources = training_asset(request), {"pipes_subprocess_client": dg.PipesSubprocessClient()}
    with dg.instance_for_test() as instance:
        killed: list = []
        killer = threading.Thread(target=kill_trainer_after_first_checkpoint, args=(checkpoints, killed))
        killer.start()
        first = dg.materialize([asset], instance=instance, resources=resources, raise_on_error=False)
        killer.join()
        assert killed and not first.success  # the trainer died; this process (Dagster's) did not
        assert not (adapter / "adapter_model.safetensors").exists()

        second = dg.materialize([asset], instance=instance, resources=resources)
        assert second.success
        logged = messages(instance, second)
        assert any(m.startswith("resuming from checkpoint") for m in logged)  # progress arrives over Pipes
        assert any(m.startswith("step 40/40 loss") for m in logged)
        metadata = second.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["resumed_from"].value.startswith(str(checkpoints))
        # The trainer resolved compute_dtype 'auto' as this process does (--auto-dtype reaches subprocesses).
        assert metadata["compute_dtype"].value == str(pick_compute_dtype("auto", "cpu")).removeprefix("torch.")
        assert (adapter / "adapter_model.safetensors").is_file()


def test_a_training_error_reaches_dagster_with_its_message(tiny_base, tmp_path):
    data = tmp_path / "train"
    toy_dataset(3).save_to_disk(str(data))
    request = write_request(tmp_path / "request.json", tiny_base, data, tmp_path / "a", tmp_path / "c", CONFIG | {"batch_size": 8}, "cpu", tmp_path / "r.json")
    with dg.instance_for_test() as instance:
        result = dg.materialize([training_asset(request)], instance=instance,
                                resources={"pipes_subprocess_client": dg.PipesSubprocessClient()}, raise_on_error=False)
        assert not result.success
        # Pipes carries the worker's exception back as an engine event with the structured error (shown in the UI).
        closed = [e for e in instance.all_logs(result.run_id) if e.message == "[pipes] external process pipes closed with exception"]
        error = closed[0].dagster_event.engine_event_data.error
        assert "DatasetTooSmall" in error.to_string() and "the training split has 3 examples, fewer than one batch of 8" in error.message
