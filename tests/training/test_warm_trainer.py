"""The warm trainer (resources/warm_trainer.py, assets/training/zygote.py) through real Dagster runs:
trainers are forked from one pre-imported server, report through Pipes like a fresh process, and a
trainer killed by a signal fails its step retriably without taking Dagster's process or the server
with it; the next run resumes from its checkpoint; an interrupted step sends its trainer SIGINT, as
PipesSubprocessClient does. A variable read at import time restarts the server."""

import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest
from toy_data import toy_dataset

from assets.training.worker import attempt_files, run_request, write_request
from resources import warm_trainer
from resources.compute import ComputeSettings

pytestmark = pytest.mark.integration  # Dagster runs, a server process and its trainers

CONFIG = dict(max_steps=40, batch_size=4, save_steps=5, logging_steps=5, seed=5)


def training_asset(tmp_path, base, data, config):
    @dg.asset
    def adapter(context: dg.AssetExecutionContext, compute: ComputeSettings, pipes_subprocess_client: dg.PipesSubprocessClient):
        checkpoints, attempt = tmp_path / "ckpt", f"{context.run_id[:8]}-{context.retry_number}"
        request, report, error = attempt_files(checkpoints, attempt)
        write_request(request, base, data, tmp_path / f"adapter-{attempt}", checkpoints, config, "cpu", report, error, "d1", attempt)
        result = compute.train(context, pipes_subprocess_client, request, run_in_process=run_request)
        return dg.MaterializeResult(metadata={"resumed_from": result["resumed_from"] or "-", "steps": result["steps"]})

    return adapter


def materialize(instance, asset):
    resources = {"compute": ComputeSettings(), "pipes_subprocess_client": dg.PipesSubprocessClient()}
    result = dg.materialize([asset], instance=instance, resources=resources, raise_on_error=False)
    return result, [e.message or "" for e in instance.all_logs(result.run_id)]


def forked_pids(logs) -> tuple[int, int]:
    line = next(m for m in logs if "forked from the warm trainer server" in m)
    trainer = int(line.split("trainer pid ")[1].split(",")[0])
    server = int(line.split("server (pid ")[1].split(")")[0])
    return trainer, server


@pytest.fixture
def data(tmp_path):
    toy_dataset(80).save_to_disk(str(tmp_path / "train"))
    return tmp_path / "train"


def test_trainers_are_forked_from_one_warm_server_and_report_through_pipes(tiny_base, tmp_path, data):
    assert ComputeSettings().uses_warm_trainer()  # the default on a Linux CPU
    with dg.instance_for_test() as instance:
        first, logs = materialize(instance, training_asset(tmp_path / "a", tiny_base, data, CONFIG))
        assert first.success
        trainer, server = forked_pids(logs)
        assert trainer != os.getpid() and any(m.startswith("step 40/40 loss") for m in logs)  # progress over Pipes
        second, logs = materialize(instance, training_asset(tmp_path / "b", tiny_base, data, CONFIG))
        assert second.success
        again, same_server = forked_pids(logs)
        assert same_server == server and again != trainer  # a new trainer, the same warm server
        assert psutil.Process(server).is_running()
        assert not psutil.pid_exists(trainer) or psutil.Process(trainer).status() == psutil.STATUS_ZOMBIE


def act_when_training(instance, ready, act, acted: list) -> None:
    """Poll the latest run's log until a trainer was forked and `ready(lines)` holds, then call
    `act(trainer pid)` once and record the pid in `acted`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not acted:
        runs = instance.get_runs(limit=1)
        lines = [r.event_log_entry.message or "" for r in instance.get_records_for_run(run_id=runs[0].run_id).records] if runs else []
        forked = [m for m in lines if "forked from the warm trainer server" in m]
        if forked and ready(lines):
            pid, _ = forked_pids(forked)
            act(pid)
            acted.append(pid)
        time.sleep(0.01)


def kill_when_checkpointed(checkpoints, instance, killed: list) -> None:
    """SIGKILL the trainer (named in the run log) once it wrote its first checkpoint."""
    act_when_training(instance, lambda _: bool(list(checkpoints.glob("step-*"))), lambda pid: os.kill(pid, signal.SIGKILL), killed)


def test_a_killed_trainer_fails_its_step_retriably_and_the_next_run_resumes(tiny_base, tmp_path, data):
    asset = training_asset(tmp_path, tiny_base, data, CONFIG)
    with dg.instance_for_test() as instance:
        killed: list = []
        killer = threading.Thread(target=kill_when_checkpointed, args=(tmp_path / "ckpt", instance, killed))
        killer.start()
        first, logs = materialize(instance, asset)
        killer.join()
        assert killed and not first.success
        failure = first.get_step_failure_events()[0].step_failure_data
        assert "training failed: the trainer ended without a report" in failure.error.message
        assert "failed with code -9" in failure.error.message  # SIGKILL, as Popen would say
        assert failure.user_failure_data.metadata["retriable"].value is True
        _, server = forked_pids(logs)
        assert psutil.Process(server).is_running()  # the server outlives its trainer

        second, logs = materialize(instance, asset)
        assert second.success
        assert any(m.startswith("resuming from checkpoint") for m in logs)
        metadata = second.get_asset_materialization_events()[0].materialization.metadata
        assert metadata["resumed_from"].value.startswith(str(tmp_path / "ckpt"))
        assert forked_pids(logs)[1] == server


def test_a_training_error_reaches_dagster_and_the_step_log(tiny_base, tmp_path):
    toy_dataset(3).save_to_disk(str(tmp_path / "tiny"))
    with dg.instance_for_test() as instance:
        result, logs = materialize(instance, training_asset(tmp_path, tiny_base, tmp_path / "tiny", CONFIG | {"batch_size": 8}))
        assert not result.success
        message = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "training stopped: DatasetTooSmall: the training split has 3 examples" in message
        # The trainer's stderr is the step's: its traceback is in the captured compute log.
        captured = [e for e in result.all_events if e.event_type_value == "LOGS_CAPTURED"][0].logs_captured_data
        manager = instance.compute_log_manager
        stderr = manager.get_log_data(manager.build_log_key_for_run(result.run_id, captured.file_key)).stderr
        assert b"DatasetTooSmall" in stderr


def test_an_import_time_variable_restarts_the_server_and_others_do_not(monkeypatch):
    warm_trainer.warm_up()
    server, folder = warm_trainer._SERVER.process.pid, Path(warm_trainer._SERVER.socket_path).parent
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")  # read by our own steps, never at import
    monkeypatch.setenv("LORALINE_LANDING_DIR", "/elsewhere")  # ours are read when used
    warm_trainer.warm_up()
    assert warm_trainer._SERVER.process.pid == server
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read by the OpenMP runtime when torch loads
    warm_trainer.warm_up()
    assert warm_trainer._SERVER.process.pid != server
    assert not psutil.pid_exists(server) or psutil.Process(server).status() == psutil.STATUS_ZOMBIE
    assert not folder.exists()  # its socket and folder went with it


def test_the_cold_launcher_stays_available():
    assert not ComputeSettings(warm_trainer=False).uses_warm_trainer()
    assert not ComputeSettings(training_launcher="torchrun").uses_warm_trainer()
    assert not warm_trainer.usable("cuda")


def interrupt_when_training(instance, sent: list) -> None:
    """Once a trainer logs a step, send this process SIGINT: what Dagster turns into an interrupted step."""
    act_when_training(instance, lambda lines: any(m.startswith("step ") for m in lines), lambda _: os.kill(os.getpid(), signal.SIGINT), sent)


def test_an_interrupted_step_stops_its_trainer(tiny_base, tmp_path, data):
    asset = training_asset(tmp_path, tiny_base, data, CONFIG | {"max_steps": 2000, "logging_steps": 1, "save_steps": 10**6})
    with dg.instance_for_test() as instance:
        sent: list = []
        interrupter = threading.Thread(target=interrupt_when_training, args=(instance, sent))
        interrupter.start()
        result, logs = materialize(instance, asset)
        interrupter.join()
        assert sent and not result.success
        assert "[pipes] execution interrupted, sending SIGINT to the trainer." in logs
        deadline = time.monotonic() + 30
        while psutil.pid_exists(sent[0]) and psutil.Process(sent[0]).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not psutil.pid_exists(sent[0]) or psutil.Process(sent[0]).status() == psutil.STATUS_ZOMBIE  # it stopped, well before 2000 steps


def trains_unwarmed():
    @dg.asset(name="qlora_adapter")
    def trains(compute: ComputeSettings) -> None:
        pass

    return trains


def test_a_run_that_trains_warms_up_as_it_starts_and_survives_a_server_that_cannot(monkeypatch):
    started: list = []
    monkeypatch.setattr(warm_trainer, "warm_up", lambda: started.append("warm"))

    @dg.asset(name="qlora_adapter")
    def trains(compute: ComputeSettings) -> None:
        assert started == ["warm"]  # before the step's body: the run began with it

    @dg.asset(name="adapter_registry")
    def does_not(compute: ComputeSettings) -> None:
        pass

    with dg.instance_for_test() as instance:
        assert materialize(instance, does_not)[0].success and started == []
        assert materialize(instance, trains)[0].success

        def broken():
            raise RuntimeError("the warm trainer server did not start (exit code 1)")

        monkeypatch.setattr(warm_trainer, "warm_up", broken)
        result, logs = materialize(instance, trains_unwarmed())
    assert result.success  # only a speed-up: training would start the server again, and fail there
    assert "the warm trainer server did not start (the warm trainer server did not start (exit code 1)); training will try again" in logs
