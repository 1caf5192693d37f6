"""Training requests: what `python -m assets.training REQUEST.json` (alone or under `torchrun`) is
asked to do, and what it answers.

The request names the base, the tokenized train split, the adapter and checkpoint folders, the
settings and the device; process 0 holds the checkpoint folder's lock for the life of the training
(checkpoint.py: a second attempt at the same version stops at once, a retry after a kill resumes),
then writes the TrainingReport as JSON to `report_path`, or the error to `error_path` with
`retry`: false for a deliberate stop (recipe.TrainingStopped: diverged, too little data, time
limit), true for anything else (disk full, out of memory, a lost peer, the lock held). The
launcher (resources/compute.py) reads both. Each attempt has its own request, report and error
files (`attempt_files`), so attempts never read or delete each other's. Running out of the Dagster
process means a crash or a memory spike ends this process, not Dagster's; under `torchrun
--nproc-per-node N` the recipe trains data-parallel (see recipe.py).
"""

import json
import os
import sys
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

from assets.common.locks import FOLDER_LOCK


def attempt_files(checkpoint_dir: Path, attempt: str) -> tuple[Path, Path, Path]:
    """(request, report, error) paths of one attempt, inside the version's checkpoint folder."""
    return tuple(checkpoint_dir / f"{kind}-{attempt}.json" for kind in ("request", "report", "error"))


def write_request(path: Path, base_dir: Path, dataset_dir: Path, adapter_dir: Path, checkpoint_dir: Path,
                  config: dict[str, Any], device: str, report_path: Path, error_path: Path | None = None,
                  domain: str = "", attempt: str = "") -> Path:
    request = {
        "base_dir": str(base_dir), "dataset_dir": str(dataset_dir), "adapter_dir": str(adapter_dir),
        "checkpoint_dir": str(checkpoint_dir), "config": config, "device": device, "report_path": str(report_path),
        "error_path": str(error_path or report_path.with_name(f"{report_path.stem}.error.json")),
        "lock_path": str(checkpoint_dir / FOLDER_LOCK), "domain": domain, "attempt": attempt,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(request, indent=2))
    return path


def run_request(request: dict[str, Any], log) -> dict[str, Any]:
    """Train as the request says; on process 0 also write the report JSON. Returns the report."""
    from datasets import load_from_disk

    from assets.settings.training import QLoraConfig
    from assets.training.checkpoint import claim_checkpoints
    from assets.training.recipe import TrainingStopped, train_qlora

    rank0 = int(os.environ.get("RANK", "0")) == 0
    checkpoint_dir = Path(request["checkpoint_dir"])
    try:
        # Process 0 holds the folder for every process of this attempt; others never touch its files.
        with claim_checkpoints(checkpoint_dir, attempt=request.get("attempt", ""), domain=request.get("domain", "")) if rank0 else nullcontext():
            report = train_qlora(
                Path(request["base_dir"]),
                load_from_disk(request["dataset_dir"]),
                Path(request["adapter_dir"]),
                checkpoint_dir,
                QLoraConfig(**request["config"]),
                request["device"],
                log=log,
            )
            result = asdict(report) | {"trainable_percent": report.trainable_percent}
            if rank0:
                staging = Path(request["report_path"]).with_suffix(".tmp")
                staging.write_text(json.dumps(result, indent=2))
                staging.replace(request["report_path"])
    except Exception as error:
        # The launcher only sees an exit code; this file tells it what went wrong and whether a
        # retry could help (a killed process writes nothing here and is retried).
        if rank0:
            _write_error(Path(request["error_path"]), error, retry=not isinstance(error, TrainingStopped))
        raise
    return result


def _write_error(path: Path, error: Exception, retry: bool) -> None:
    try:
        path.write_text(json.dumps({"type": type(error).__name__, "message": str(error), "retry": retry}))
    except OSError:
        pass  # the disk that failed training may refuse this too: the launcher then retries, as for a kill


def read_request(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def log_to_stderr(line: str) -> None:
    print(f"[rank {os.environ.get('RANK', '0')}] {line}", file=sys.stderr, flush=True)
