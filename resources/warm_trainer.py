"""The 'subprocess' launcher's warm start: trainers forked from a server that has already imported
torch, transformers, peft and bitsandbytes (assets/training/zygote.py), through Dagster Pipes.

One server per Dagster process (the demo's process, a run worker), started in the background when a
run that trains begins (`warm_up`), so its imports overlap the steps before training. Each training
then costs a fork instead of ~7 s of interpreter and imports, and the trainer is still a process of
its own: a crash ends it, not Dagster. It gets this process's environment and working directory as
they are at launch, and its stdout and stderr (so the step's compute log captures it, as with Popen).

Used on Linux with the CPU only: forking after importing CUDA-capable libraries, or on macOS after
system frameworks start threads, is not safe; there the launcher starts `python -m assets.training`.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

# Variables that torch, its threading libraries, transformers, datasets, peft or bitsandbytes may read
# when imported (thread counts, kernels, caches, offline modes). The trainer gets the whole environment
# as it is at launch, but these would already have acted on the server's imports: a change restarts it.
# Others (TOKENIZERS_PARALLELISM, GX_ANALYTICS_ENABLED: our own steps set them) do not.
IMPORT_TIME_PREFIXES = ("OMP_", "MKL_", "KMP_", "GOMP_", "OPENBLAS_", "ONEDNN_", "DNNL_", "ATEN_", "TORCH_", "PYTORCH_",
                        "CUDA_", "NVIDIA_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "DATASETS_", "PEFT_", "BNB_",
                        "BITSANDBYTES_", "LD_", "PYTHON", "XDG_CACHE_HOME")  # never LORALINE_*: read when used
READ_TICK_S = 1.0  # the wait for the trainer wakes this often, so Dagster's interrupt (a signal) is seen


def usable(device: str) -> bool:
    return sys.platform == "linux" and device == "cpu"


@dataclass
class _Server:
    process: subprocess.Popen
    socket_path: str
    alive_write: int  # our end of the pipe whose closing tells the server to exit
    env: dict[str, str]

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        os.close(self.alive_write)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # The server removes its socket and folder when it exits; a killed one cannot.
        shutil.rmtree(Path(self.socket_path).parent, ignore_errors=True)


_LOCK = threading.Lock()
_SERVER: _Server | None = None


def warm_up() -> None:
    """Start this process's server now (it imports in the background), unless one is running."""
    with _LOCK:
        _server()


def _server() -> _Server:
    """The running server, restarted when it died or when a variable read at import time changed since
    it started (IMPORT_TIME_PREFIXES): a server started under another environment could train
    differently from a fresh process."""
    global _SERVER
    env = dict(os.environ)
    if _SERVER is not None and _SERVER.alive() and _import_time(_SERVER.env) == _import_time(env):
        return _SERVER
    if _SERVER is not None:
        _SERVER.stop()
    folder = tempfile.mkdtemp(prefix="loraline-trainer-")  # 0700: only this user may ask it to train
    path = os.path.join(folder, "socket")
    alive_read, alive_write = os.pipe()
    process = subprocess.Popen([sys.executable, "-m", "assets.training.zygote", path, str(alive_read)],
                               pass_fds=(alive_read,), stdin=subprocess.DEVNULL, env=env)
    os.close(alive_read)
    _SERVER = _Server(process, path, alive_write, env)
    deadline = time.monotonic() + 60
    while not os.path.exists(path):  # it binds before importing: a fraction of a second
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the warm trainer server did not start (exit code {process.poll()})")
        time.sleep(0.01)
    return _SERVER


def _import_time(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(IMPORT_TIME_PREFIXES)}


def run(context: dg.AssetExecutionContext, pipes: dg.PipesSubprocessClient, request: Path) -> None:
    """Train `request` in a trainer forked from the warm server, through a Pipes session set up as
    `pipes` would set up its subprocess (its context injector, message reader, env and cwd). Raises
    as PipesSubprocessClient.run does when the trainer exits non-zero (negative: the signal that killed it)."""
    with dg.open_pipes_session(context=context, context_injector=pipes.context_injector,
                               message_reader=pipes.message_reader) as session:
        env = {**os.environ, **(pipes.env or {}), **session.get_bootstrap_env_vars()}
        waited = time.monotonic()
        with _LOCK:
            server = _server()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(server.socket_path)
            sys.stdout.flush()
            sys.stderr.flush()
            message = json.dumps({"request": str(request), "env": env, "cwd": pipes.cwd or os.getcwd()}).encode() + b"\n"
            socket.send_fds(connection, [message], [1, 2])
            replies = _Replies(connection)
            pid = replies.next("pid")
            context.log.info(f"trainer pid {pid}, forked from the warm trainer server (pid {server.process.pid}); "
                             f"{time.monotonic() - waited:.1f}s to start")
            try:
                status = replies.next("status")
            except dg.DagsterExecutionInterruptedError:
                if pipes.forward_termination:
                    _interrupt(context, pid, replies, pipes.termination_timeout_seconds)
                raise
        finally:
            connection.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError(f"External execution process failed with code {code}")


class _Replies:
    """The watcher's JSON lines, read with a timeout so that a signal handler's exception (Dagster's
    interrupt) surfaces while waiting for a trainer that runs for hours."""

    def __init__(self, connection: socket.socket):
        self.connection, self.buffer = connection, b""
        connection.settimeout(READ_TICK_S)

    def next(self, key: str, deadline: float | None = None) -> int:
        while b"\n" not in self.buffer:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no {key!r} from the warm trainer server")
            try:
                chunk = self.connection.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                raise RuntimeError(f"the warm trainer server closed the connection before saying {key!r} (it was killed?)")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return int(json.loads(line)[key])


def _interrupt(context: dg.AssetExecutionContext, pid: int, replies: _Replies, timeout_s: float) -> None:
    """As PipesSubprocessClient does on an interrupted step: SIGINT, a grace period, then SIGKILL."""
    context.log.info("[pipes] execution interrupted, sending SIGINT to the trainer.")
    try:
        os.kill(pid, signal.SIGINT)
        replies.next("status", deadline=time.monotonic() + timeout_s)
    except (ProcessLookupError, RuntimeError):
        return  # already gone
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
