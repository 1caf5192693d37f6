"""The Dagster Pipes side of out-of-process training: `python -m assets.training.external REQUEST.json`.

Launched by `dg.PipesSubprocessClient` (alone or through `torchrun`; in production the same command
runs in a pod through dagster-k8s' `PipesK8sClient`). Process 0 opens the Pipes channel so its
progress lines reach the Dagster run log and its report comes back as a custom message; other
processes only train. Imports `dagster_pipes` (the small dependency-free client library), never dagster.
"""

import os
import sys

from assets.training.worker import _stderr, read_request, run_request


def main(request_path: str) -> None:
    request = read_request(request_path)
    if int(os.environ.get("RANK", "0")) != 0:
        run_request(request, _stderr)
        return
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    if DAGSTER_PIPES_CONTEXT_ENV_VAR not in os.environ:  # launched by hand: plain stderr logging
        run_request(request, _stderr)
        return
    with open_dagster_pipes() as pipes:
        report = run_request(request, pipes.log.info)
        pipes.report_custom_message(report)


if __name__ == "__main__":
    main(sys.argv[1])
