"""The largest page of a parquet column chunk, read from the page headers without decoding a page.

Pure module (stdlib). A parquet page is decompressed and decoded whole, so a page is the smallest
unit of memory a reader can spend: a 0.5 MB file can hold one page that decodes to 300 MB, and
reading it costs that much however small the batches asked for. The footer does not list pages,
so their headers (Thrift compact protocol, `PageHeader` in parquet.thrift) are walked here: fields
1-3 are the page type, its uncompressed and its compressed size; everything else is skipped
without being read (statistics in a header may hold long strings). At most `limit` headers are
read per chunk, each within the chunk's bounds, so a forged header cannot send the walk astray.
"""

import io
from typing import BinaryIO

_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


class PageHeaderError(ValueError):
    """A page header that cannot be parsed (a damaged or forged file)."""


def largest_page(stream: BinaryIO, start: int, length: int, max_pages: int = 1_000_000) -> int:
    """Bytes the largest page of the column chunk at [start, start + length) decodes to."""
    largest, offset, end = 0, start, start + length
    for _ in range(max_pages):
        if offset >= end:
            return largest
        stream.seek(offset)
        reader = _Reader(stream, end)
        uncompressed, compressed = _page_sizes(reader)
        if uncompressed < 0 or compressed < 0:
            raise PageHeaderError(f"page header at byte {offset} gives a negative size")
        largest = max(largest, uncompressed)
        offset += reader.consumed + compressed
    raise PageHeaderError(f"more than {max_pages} pages in one column chunk")


class _Reader:
    def __init__(self, stream: BinaryIO, end: int) -> None:
        self.stream, self.end = stream, end
        self.start = stream.tell()
        self.consumed = 0

    def byte(self) -> int:
        data = self.read(1)
        return data[0]

    def read(self, size: int) -> bytes:
        if self.start + self.consumed + size > self.end:
            raise PageHeaderError("page header runs past its column chunk")
        data = self.stream.read(size)
        if len(data) < size:
            raise PageHeaderError("page header cut short by the end of the file")
        self.consumed += size
        return data

    def skip(self, size: int) -> None:
        if size < 0 or self.start + self.consumed + size > self.end:
            raise PageHeaderError("page header runs past its column chunk")
        self.stream.seek(size, io.SEEK_CUR)
        self.consumed += size

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise PageHeaderError("varint longer than 64 bits in a page header")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)


def _page_sizes(reader: _Reader) -> tuple[int, int]:
    """(uncompressed, compressed) page size from one PageHeader struct, which is skipped whole."""
    sizes: dict[int, int] = {}
    field = 0
    while True:
        header = reader.byte()
        kind = header & 0x0F
        if kind == _STOP:
            break
        delta = header >> 4
        field = field + delta if delta else reader.zigzag()
        if field in (2, 3) and kind == _I32:
            sizes[field] = reader.zigzag()
        else:
            _skip(reader, kind, depth=0)
    if 2 not in sizes or 3 not in sizes:
        raise PageHeaderError("page header without its sizes")
    return sizes[2], sizes[3]


def _skip(reader: _Reader, kind: int, depth: int) -> None:
    if depth > 32:
        raise PageHeaderError("page header nested too deeply")
    if kind in (_TRUE, _FALSE):
        return
    if kind == _BYTE:
        reader.skip(1)
    elif kind in (_I16, _I32, _I64):
        reader.varint()
    elif kind == _DOUBLE:
        reader.skip(8)
    elif kind == _BINARY:
        reader.skip(reader.varint())
    elif kind in (_LIST, _SET):
        header = reader.byte()
        size = header >> 4 if header >> 4 != 15 else reader.varint()
        for _ in range(size):
            _skip_element(reader, header & 0x0F, depth)
    elif kind == _MAP:
        size = reader.varint()
        if size:
            types = reader.byte()
            for _ in range(size):
                _skip_element(reader, types >> 4, depth)
                _skip_element(reader, types & 0x0F, depth)
    elif kind == _STRUCT:
        while (header := reader.byte()) & 0x0F != _STOP:
            if not header >> 4:
                reader.zigzag()  # a long-form field id
            _skip(reader, header & 0x0F, depth + 1)
    else:
        raise PageHeaderError(f"unknown Thrift type {kind} in a page header")


def _skip_element(reader: _Reader, kind: int, depth: int) -> None:
    if kind in (_TRUE, _FALSE):  # inside a collection a boolean takes one byte
        reader.skip(1)
    else:
        _skip(reader, kind, depth + 1)


def _payload(group, columns: list[str]) -> list:
    """The column chunks of `group` that belong to `columns` (nested ones by their top name)."""
    chunks = (group.column(i) for i in range(group.num_columns))
    return [chunk for chunk in chunks if chunk.path_in_schema.split(".")[0] in columns]


def batch_rows(group, columns: list[str], batch_bytes: int, max_rows: int) -> int:
    """Rows per batch so that a batch of `group` (a pyarrow RowGroupMetaData) decodes to about
    `batch_bytes`, judged from its payload's uncompressed size per row (footer numbers only)."""
    payload = sum(chunk.total_uncompressed_size for chunk in _payload(group, columns))
    return int(max(1, min(max_rows, batch_bytes * max(group.num_rows, 1) // max(payload, 1))))


def largest_payload_page(stream: BinaryIO, group, columns: list[str]) -> int:
    """Bytes the largest page among `group`'s payload column chunks decodes to."""
    largest = 0
    for chunk in _payload(group, columns):
        offsets = [offset for offset in (chunk.dictionary_page_offset, chunk.data_page_offset) if offset]
        start = min(offsets) if offsets else 0
        largest = max(largest, largest_page(stream, start, chunk.total_compressed_size))
    return largest
