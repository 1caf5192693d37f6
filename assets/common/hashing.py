"""Content fingerprints: the data versions that make Dagster mark downstream assets stale."""

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def files_fingerprint(files: dict[str, Path]) -> str:
    """Fingerprint of named files: relative names and contents, independent of mtimes and order."""
    return digests_fingerprint({name: file_sha256(path) for name, path in files.items()})


def digests_fingerprint(digests: dict[str, str]) -> str:
    """`files_fingerprint` from already computed sha256 hex digests (name -> digest), for callers
    that hash while copying and must not read the bytes a second time."""
    digest = hashlib.sha256()
    for name in sorted(digests):
        digest.update(name.encode("utf-8") + b"\0" + digests[name].encode() + b"\n")
    return digest.hexdigest()


def directory_fingerprint(directory: Path) -> str:
    """Fingerprint of every regular file below `directory` (hidden names included)."""
    files = {
        path.relative_to(directory).as_posix(): path
        for path in directory.rglob("*")
        if path.is_file()
    }
    return files_fingerprint(files)


def json_fingerprint(value: Any) -> str:
    """Stable hash of a JSON-serialisable value (configs): keys sorted, no whitespace."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
