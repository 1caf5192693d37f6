"""A landed file read once, hashed as it is read: the digest describes exactly the bytes parsed.

Pure stdlib. Hashing the folder first and reading it afterwards leaves a window in which a
producer may rewrite a file: rows of the new bytes would then be published under a version that
describes the old ones. Reading through `HashedFile` closes it: the sha256 is computed over the
bytes handed to the parser, from the same open file, so rows and digest always agree.

The readers read forwards; the one step back they take (re-reading the start after sniffing the
byte-order mark) is served from a copy of the first `HEAD_KEEP` bytes, never re-read from disk, so
a byte cannot be hashed in one version and parsed in another. Parquet is read by random access;
`copy_hashed` streams it into a private copy that the parquet reader then opens.
"""

import hashlib
import io
import shutil
from pathlib import Path
from typing import BinaryIO

from assets.common.hashing import file_sha256

HEAD_KEEP = 64 * 1024  # bytes: more than any reader looks ahead before seeking back
_CHUNK_BYTES = 1 << 20


class HashedFile:
    """Read-only, forward-reading view of a binary file that hashes every byte it returns."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.head = bytearray()  # the first HEAD_KEEP bytes, for a seek back within them
        self.end = 0             # bytes taken from `raw` (and hashed)
        self.position = 0        # where the next read starts; < end only while re-reading the head

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        back_in_head = 0 <= offset < self.end <= len(self.head)
        if whence != io.SEEK_SET or not (offset == self.end or back_in_head):
            raise io.UnsupportedOperation("a hashed landed file is read forwards; only its first "
                                          f"{HEAD_KEEP} bytes can be read again")
        self.position = offset
        return offset

    def read(self, size: int = -1) -> bytes:
        again = b""
        if self.position < self.end:  # re-reading the head
            stop = self.end if size < 0 else min(self.end, self.position + size)
            again = bytes(self.head[self.position:stop])
            self.position = stop
            if size >= 0:
                size -= len(again)
                if size == 0:
                    return again
        data = self.raw.read() if size < 0 else self.raw.read(size)
        self._take(data)
        return again + data if again else data

    def _take(self, data: bytes) -> None:
        self.sha.update(data)
        if len(self.head) < HEAD_KEEP:
            self.head += data[:HEAD_KEEP - len(self.head)]
        self.end += len(data)
        self.position = self.end

    def finish(self) -> str:
        """Hash the bytes the parser left unread (a refused or stopped file), then return the digest."""
        while chunk := self.raw.read(_CHUNK_BYTES):
            self._take(chunk)
        return self.sha.hexdigest()


def copy_hashed(source: HashedFile, target: Path) -> None:
    """Write the whole of `source` to `target` (hashing it on the way) for random-access readers."""
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, _CHUNK_BYTES)


def landed_digests(files: dict[str, Path], unreadable: str) -> dict[str, str]:
    """sha256 of each named file, `unreadable` for one that cannot be read (the reader reports it)."""
    digests = {}
    for name, path in files.items():
        try:
            digests[name] = file_sha256(path)
        except OSError:
            digests[name] = unreadable
    return digests
