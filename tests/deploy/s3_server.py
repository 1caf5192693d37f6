"""A throwaway S3-compatible server on 127.0.0.1 for tests and benchmarks: `running_s3()`.

moto's server mode (`moto_server`, from the registry's `moto[server]`) speaks the S3 REST API over
HTTP. It runs as its own process, on a free loopback port, and is stopped on the way out, also when
the body raised. Nothing is mocked on the client side: loraline reaches it through s3fs/aiobotocore
configured only by the standard AWS variables (`S3Server.env`), exactly as a user's bucket would be.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 30


class S3Unavailable(RuntimeError):
    """moto's server is not installed, or it would not start."""


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    @property
    def env(self) -> dict[str, str]:
        """What a user sets for a private S3 endpoint (MinIO, Ceph...): credentials, region, endpoint."""
        return {"AWS_ACCESS_KEY_ID": "loraline-test", "AWS_SECRET_ACCESS_KEY": "loraline-test-secret",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def make_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"], region_name="us-east-1").create_bucket(Bucket=name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _moto_server() -> list[str]:
    found = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if found is None:
        raise S3Unavailable("moto_server is not installed: pip install 'moto[server]' (the s3 extra's test dependency)")
    return [found]


@contextlib.contextmanager
def running_s3(log_file: Path | None = None) -> Iterator[S3Server]:
    """Start moto's S3 server on a free 127.0.0.1 port; yield it; stop it."""
    command = _moto_server()
    for _ in range(3):  # the free port may be taken between the probe and the bind
        port = _free_port()
        log = open(log_file, "ab") if log_file else subprocess.DEVNULL
        process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, start_new_session=True,
                                   env={**os.environ, "MOTO_PORT": str(port)})
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        if process.poll() is None and time.monotonic() < deadline:
            break
        process.kill()
        process.wait()
        if log is not subprocess.DEVNULL:
            log.close()
    else:
        raise S3Unavailable(f"moto_server did not start on 127.0.0.1 (see {log_file or 'its output'})")
    try:
        yield S3Server(endpoint)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log is not subprocess.DEVNULL:
            log.close()
