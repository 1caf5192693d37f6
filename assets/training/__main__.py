"""Training as a command, the one entry point: `python -m assets.training REQUEST.json`.

Launched by `dg.PipesSubprocessClient` (alone or through `torchrun --nproc-per-node N -m
assets.training`; in production the same command runs in a pod through dagster-k8s'
`PipesK8sClient`), or by hand. Under Dagster Pipes, process 0 opens the Pipes channel so its progress
lines reach the run log and its report comes back as a custom message; other processes, and a run
by hand, log to stderr. Imports `dagster_pipes` (the small dependency-free client library), never dagster.
"""

import os
import sys

from assets.common.memory import reuse_freed_memory
from assets.training.worker import log_to_stderr, read_request, run_request


def main(request_path: str) -> None:
    request = read_request(request_path)
    reuse_freed_memory()  # every step allocates and frees activations of a few MB (assets/common/memory.py)
    if int(os.environ.get("RANK", "0")) != 0:
        run_request(request, log_to_stderr)
        return
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    if DAGSTER_PIPES_CONTEXT_ENV_VAR not in os.environ:  # launched by hand: plain stderr logging
        run_request(request, log_to_stderr)
        return
    with open_dagster_pipes() as pipes:
        report = run_request(request, pipes.log.info)
        pipes.report_custom_message(report)


if __name__ == "__main__":
    main(sys.argv[1])
