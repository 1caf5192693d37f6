"""Which training failures may be retried, the per-run time limit, and one attempt at a time per
checkpoint folder: the real recipe and worker, in this process (the same through Dagster and a Pipes
subprocess: tests/pipelines/test_training_retries.py)."""

import json
import os

import pytest
from toy_data import toy_dataset

from assets.settings.training import QLoraConfig
from assets.training.checkpoint import AttemptInProgress, claim_checkpoints, remove_checkpoints
from assets.training.recipe import DatasetTooSmall, NonFiniteLoss, TrainingStopped, TrainingTimeLimit, train_qlora
from assets.training.worker import attempt_files, run_request, write_request

QUICK = dict(max_steps=4, batch_size=4, logging_steps=1, save_steps=2)


def request(tmp_path, base, rows, attempt="a1", config=QUICK):
    data = tmp_path / f"train-{rows}"
    if not data.exists():
        toy_dataset(rows).save_to_disk(str(data))
    checkpoints = tmp_path / "ckpt"
    path, report, error = attempt_files(checkpoints, attempt)
    write_request(path, base, data, tmp_path / f"adapter-{attempt}", checkpoints, config, "cpu", report, error, "d1", attempt)
    return json.loads(path.read_text())


def test_only_deliberate_stops_skip_the_retry():
    assert all(issubclass(stop, TrainingStopped) for stop in (NonFiniteLoss, DatasetTooSmall, TrainingTimeLimit))
    assert not issubclass(OSError, TrainingStopped) and not issubclass(AttemptInProgress, TrainingStopped)


def test_a_deliberate_stop_is_reported_not_retriable(tiny_base, tmp_path):
    spec = request(tmp_path, tiny_base, rows=3, config=QUICK | {"batch_size": 8})
    with pytest.raises(DatasetTooSmall):
        run_request(spec, log=lambda _: None)
    error = json.loads(open(spec["error_path"]).read())
    assert error["type"] == "DatasetTooSmall" and error["retry"] is False


def test_disk_full_is_reported_retriable_and_the_checkpoints_stay(tiny_base, tmp_path):
    spec = request(tmp_path, tiny_base, rows=40)
    adapter = tmp_path / "adapter-a1"
    adapter.mkdir()
    (adapter / "adapter_config.json").symlink_to("/dev/full")  # writes there fail with ENOSPC: a full disk
    with pytest.raises(OSError, match="No space left on device"):
        run_request(spec, log=lambda _: None)
    error = json.loads(open(spec["error_path"]).read())
    assert error == {"type": "OSError", "message": "[Errno 28] No space left on device", "retry": True}
    assert (tmp_path / "ckpt" / "step-00000002").is_dir()  # a retry resumes from here

    again = request(tmp_path, tiny_base, rows=40, attempt="a2")  # the retry: its own files, the lock free again
    report = run_request(again, log=lambda _: None)
    assert report["resumed_from"].endswith("step-00000002")
    assert json.loads(open(again["report_path"]).read())["steps"] == 4
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*-a*.json")) == [
        "error-a1.json", "report-a2.json", "request-a1.json", "request-a2.json"]  # no attempt touched another's


def test_a_second_attempt_stops_at_once_while_the_first_trains(tiny_base, tmp_path):
    spec = request(tmp_path, tiny_base, rows=40, attempt="second")
    checkpoints = tmp_path / "ckpt"
    (checkpoints / "step-00000002").mkdir()
    with claim_checkpoints(checkpoints, attempt="first", domain="d1"):  # the first attempt, still training
        with pytest.raises(AttemptInProgress, match=rf"another attempt is training domain 'd1' on these inputs \(pid {os.getpid()}, attempt first"):
            run_request(spec, log=lambda _: None)
        assert json.loads(open(spec["error_path"]).read())["retry"] is True
        assert not remove_checkpoints(checkpoints)  # the final cleanup waits for the lock
    assert (checkpoints / "step-00000002").is_dir()  # the first attempt's state untouched
    assert remove_checkpoints(checkpoints) and not checkpoints.exists()


def test_claiming_removes_a_killed_attempts_half_written_checkpoint(tmp_path):
    half = tmp_path / "ckpt" / ".staging-step-00000010-4242"
    half.mkdir(parents=True)
    with claim_checkpoints(tmp_path / "ckpt", attempt="next"):
        assert not half.exists()


def test_the_time_limit_stops_after_a_checkpoint_and_a_later_run_resumes(tiny_base, tmp_path):
    config = QUICK | {"max_steps": 6, "save_steps": 100}
    limited = QLoraConfig(**config | {"max_train_minutes": 1e-6})  # 60 microseconds: past it after the first step
    with pytest.raises(TrainingTimeLimit, match=r"time limit \(max_train_minutes 1e-06\) after step 1/6; checkpoint of step 1 saved in "):
        train_qlora(tiny_base, toy_dataset(40), tmp_path / "adapter", tmp_path / "ckpt", limited, "cpu", log=lambda _: None)
    assert (tmp_path / "ckpt" / "step-00000001").is_dir() and not (tmp_path / "adapter").exists()

    report = train_qlora(tiny_base, toy_dataset(40), tmp_path / "adapter", tmp_path / "ckpt", QLoraConfig(**config), "cpu", log=lambda _: None)
    assert report.resumed_from.endswith("step-00000001") and report.steps == 6
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_the_time_limit_is_reported_not_retriable(tiny_base, tmp_path):
    spec = request(tmp_path, tiny_base, rows=40, config=QUICK | {"max_train_minutes": 1e-6})
    with pytest.raises(TrainingTimeLimit):
        run_request(spec, log=lambda _: None)
    error = json.loads(open(spec["error_path"]).read())
    assert error["type"] == "TrainingTimeLimit" and error["retry"] is False and "after step 1/4" in error["message"]
