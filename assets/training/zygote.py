"""A warm trainer server: `python -m assets.training.zygote SOCKET ALIVE_FD`.

A fresh `python -m assets.training` spends about 7 s on 2 cores before its first step: the
interpreter, then torch, transformers, peft (3.5 s alone), bitsandbytes and datasets. This server
imports them once and forks a trainer per request, so each training after the first starts in a
fraction of a second, and still in a process of its own: a crash, a memory spike or the OOM killer
ends that trainer, never Dagster's process or this server.

Forking after importing torch is safe here because the server stays single-threaded and does no
tensor work (no OpenMP pool, no CUDA context exists to inherit); resources/warm_trainer.py only
uses it on Linux CPUs, where that holds.

Protocol, one Unix stream connection per training: the client sends one JSON line
{"request": path, "env": {...}, "cwd": path} with its stdout and stderr descriptors attached
(SCM_RIGHTS). The server forks a watcher, which forks the trainer, answers {"pid": N}, waits for it,
answers {"status": WAITSTATUS} and exits. The server never waits itself (SIGCHLD ignored, so the
kernel reaps its watchers) and is free to fork the next request while one trains. It exits when
the client process goes (its end of the alive pipe closes), removing its socket and folder.

Pure: no dagster. The trainer runs assets/training/__main__.py's main, exactly as the command does.
"""

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback

# What a trainer imports before its first step; loaded once, here.
PRELOAD = ("torch", "transformers", "peft", "bitsandbytes", "datasets", "dagster_pipes", "assets.training.recipe",
           "assets.training.compute", "assets.training.worker", "assets.training.__main__")
MAX_MESSAGE = 1 << 20  # bytes: the environment travels in the message


def serve(path: str, alive_fd: int) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)  # before the imports: a client may connect at once and is answered once they are done
    listener.listen(16)
    server = os.getpid()
    try:
        # A Ctrl-C in the terminal reaches the whole process group; it is meant for the trainer, which
        # restores the default handler.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for module in PRELOAD:
            importlib.import_module(module)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        sys.stdout.flush()
        sys.stderr.flush()
        _accept(listener, alive_fd)
    finally:
        if os.getpid() == server:  # not in a forked watcher or trainer (they leave through os._exit anyway)
            with contextlib.suppress(OSError):
                os.unlink(path)
                os.rmdir(os.path.dirname(path))


def _accept(listener: socket.socket, alive_fd: int) -> None:
    while True:
        ready, _, _ = select.select([listener, alive_fd], [], [])
        if alive_fd in ready:
            return  # the client's process ended (or closed its end): nothing more will come
        connection, _ = listener.accept()
        try:
            message, fds = _receive(connection)
        except (OSError, ValueError) as error:
            print(f"warm trainer: a request could not be read: {error}", file=sys.stderr, flush=True)
            connection.close()
            continue
        if os.fork() == 0:
            listener.close()
            os.close(alive_fd)
            _watch(connection, message, fds)  # never returns
        connection.close()
        for fd in fds:
            os.close(fd)


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds = b"", []
    try:
        while not data.endswith(b"\n"):
            chunk, received, _, _ = socket.recv_fds(connection, 65536, 4)
            fds += received
            if not chunk:
                raise ValueError("the client closed the connection before the end of its request")
            data += chunk
            if len(data) > MAX_MESSAGE:
                raise ValueError(f"a request over {MAX_MESSAGE} bytes")
        message = json.loads(data)
        if len(fds) != 2 or not isinstance(message, dict) or not {"request", "env", "cwd"} <= message.keys():
            raise ValueError("a request needs 'request', 'env', 'cwd' and two descriptors (stdout, stderr)")
    except (OSError, ValueError):
        for fd in fds:  # whatever arrived with a request refused, so the server does not collect them
            os.close(fd)
        raise
    return message, fds


def _watch(connection: socket.socket, message: dict, fds: list[int]) -> None:
    """In the watcher: fork the trainer, say its pid, wait for it, say how it ended."""
    code = 0
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # this process waits for its child: no auto-reaping
        pid = os.fork()
        if pid == 0:
            connection.close()
            _train(message, fds)  # never returns
        for fd in fds:
            os.close(fd)
        try:
            connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        except OSError:
            # The client was interrupted before it learnt the pid, so it cannot stop this trainer.
            os.kill(pid, signal.SIGKILL)
            raise
        _, status = os.waitpid(pid, 0)
        connection.sendall(json.dumps({"status": status}).encode() + b"\n")
    except OSError:
        code = 1  # the client went away while the trainer ran: it runs on, as an orphaned Popen child would
    os._exit(code)


def _train(message: dict, fds: list[int]) -> None:
    """In the trainer: the client's stdout, stderr, working directory and environment, then main."""
    code = 1
    try:
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd in (*fds, null):
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(message["cwd"])
        os.environ.clear()
        os.environ.update(message["env"])
        sys.argv = ["assets.training", message["request"]]
        from assets.training.__main__ import main

        main(message["request"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - whatever ends the trainer is printed, as the interpreter would
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
