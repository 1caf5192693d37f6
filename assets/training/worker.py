"""Training requests: what `python -m assets.training REQUEST.json` (alone or under `torchrun`) is
asked to do, and what it answers.

The request names the base, the tokenized train split, the adapter and checkpoint folders, the
settings and the device; process 0 writes the TrainingReport as JSON to `report_path`, or, when
training stopped for a reason, the error to `error_path` (the launcher reads both). Running out of
the Dagster process means a crash or a memory spike ends this process, not Dagster's; under
`torchrun --nproc-per-node N` the recipe trains data-parallel (see recipe.py).
"""

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any


def write_request(path: Path, base_dir: Path, dataset_dir: Path, adapter_dir: Path, checkpoint_dir: Path,
                  config: dict[str, Any], device: str, report_path: Path) -> Path:
    request = {
        "base_dir": str(base_dir), "dataset_dir": str(dataset_dir), "adapter_dir": str(adapter_dir),
        "checkpoint_dir": str(checkpoint_dir), "config": config, "device": device, "report_path": str(report_path),
        "error_path": str(report_path.with_name("error.json")),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request, indent=2))
    return path


def run_request(request: dict[str, Any], log) -> dict[str, Any]:
    """Train as the request says; on process 0 also write the report JSON. Returns the report."""
    from datasets import load_from_disk

    from assets.settings.training import QLoraConfig
    from assets.training.recipe import train_qlora

    try:
        report = train_qlora(
            Path(request["base_dir"]),
            load_from_disk(request["dataset_dir"]),
            Path(request["adapter_dir"]),
            Path(request["checkpoint_dir"]),
            QLoraConfig(**request["config"]),
            request["device"],
            log=log,
        )
    except Exception as error:
        # The launcher only sees an exit code; this file tells it what went wrong and whether a
        # retry could help (a killed process writes nothing here and is retried).
        if int(os.environ.get("RANK", "0")) == 0:
            Path(request["error_path"]).write_text(json.dumps({"type": type(error).__name__, "message": str(error)}))
        raise
    result = asdict(report) | {"trainable_percent": report.trainable_percent}
    if int(os.environ.get("RANK", "0")) == 0:
        staging = Path(request["report_path"]).with_suffix(".tmp")
        staging.write_text(json.dumps(result, indent=2))
        staging.replace(request["report_path"])
    return result


def read_request(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def log_to_stderr(line: str) -> None:
    print(f"[rank {os.environ.get('RANK', '0')}] {line}", file=sys.stderr, flush=True)
