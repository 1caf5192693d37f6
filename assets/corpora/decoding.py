"""Bytes -> text for the readers: encodings, bounded line splitting, streamed JSON arrays, snippets.

Pure stdlib. Everything here reads a binary stream in `CHUNK_BYTES` pieces and keeps at most one
record (bounded by the caller's limit) plus one chunk in memory, so a hostile file (a 500 MB line,
a multi-gigabyte .json array) costs bounded memory instead of its own size.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, BinaryIO, Iterator, NamedTuple

CHUNK_BYTES = 1 << 20  # read size; small enough to be cheap, large enough that Python overhead vanishes
SNIPPET_CHARS = 200
HEAD_BYTES = 4 * SNIPPET_CHARS  # a UTF-8 character is at most 4 bytes

# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WS = re.compile(r"[ \t\n\r]*")
_FOLLOWERS = " \t\n\r,]}"
_MARGIN = 64  # characters: longer than any JSON token a chunk boundary can cut, bar strings/numbers
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")

# Undecodable UTF-16/32 units become this lone surrogate when a stream is transcoded to UTF-8, so
# the damage stays inside the record that holds it (it fails strict UTF-8 decoding there) instead
# of aborting the whole file. A named handler is the only way to do that with an incremental codec.
INVALID_MARK = "\udcff"
codecs.register_error("loraline.mark", lambda error: (INVALID_MARK, error.end))
_MARK_UTF8 = INVALID_MARK.encode("utf-8", "surrogatepass")


def encoding_name(codec: str) -> str:
    return codec.upper()


class TextStart(NamedTuple):
    codec: str          # Python codec name: utf-8, utf-16-le, ...
    bom: int            # bytes of byte-order mark skipped (so offsets stay file offsets)
    refusal: str = ""   # why the file is not read at all, else ""
    head: str = ""      # the start of a refused file, decoded as what it seems to be


def open_text(stream: BinaryIO) -> TextStart:
    """Pick the encoding from the byte-order mark (UTF-8 without one); leave the stream after it.

    A BOM-less file whose start has a NUL in every other byte is ASCII-heavy UTF-16, which UTF-8
    text never looks like: refusing the file with that diagnosis beats one "NUL byte" row per line.
    """
    sample = stream.read(4096)
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            stream.seek(len(bom))
            return TextStart(codec, len(bom))
    stream.seek(0)
    pairs = len(sample) // 2
    even, odd = sample[0:2 * pairs:2].count(0), sample[1:2 * pairs:2].count(0)
    for flavour, nuls, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if pairs and nuls >= 0.3 * pairs and others <= 0.05 * pairs:
            return TextStart("utf-8", 0, f"invalid UTF-8: NUL bytes at every other position (is the "
                                         f"file {encoding_name(flavour)} without a byte-order mark?); "
                                         "save it as UTF-8", sample[:HEAD_BYTES].decode(flavour, "replace"))
    return TextStart("utf-8", 0)


class _Utf8Reader:
    """A binary stream of another Unicode encoding, re-encoded to UTF-8 chunk by chunk."""

    def __init__(self, stream: BinaryIO, codec: str):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder(codec)("loraline.mark")
        self.done = False

    def read(self, size: int) -> bytes:
        while not self.done:
            data = self.stream.read(size)
            self.done = not data
            text = self.decoder.decode(data, final=self.done)
            if text or self.done:
                return text.encode("utf-8", "surrogatepass")
        return b""


def utf8_stream(stream: BinaryIO, codec: str) -> BinaryIO:
    """`stream` as UTF-8 bytes; invalid units of other encodings become INVALID_MARK (see above)."""
    return stream if codec == "utf-8" else _Utf8Reader(stream, codec)  # type: ignore[return-value]


class Line(NamedTuple):
    number: int          # 1-based physical line
    data: bytes | None   # without its terminator; None when longer than the limit (then skipped)
    size: int            # bytes, terminator excluded
    head: bytes          # the first bytes, for the snippet of an oversized line
    ending: bytes        # b"\n", b"\r\n", b"\r", or b"" for a last line without one


def iter_lines(stream: BinaryIO, limit: int) -> Iterator[Line]:
    """Physical lines of a UTF-8 byte stream; LF, CRLF and a lone CR each end a line.

    A line longer than `limit` bytes is reported (data None) but never assembled: its bytes past
    the head are counted and dropped, so memory stays at about `limit` + one chunk.
    """
    number, parts, size, head = 0, [], 0, b""
    while chunk := stream.read(CHUNK_BYTES):
        # A chunk ending in CR may be half of a CRLF; pull bytes until the pair is whole.
        while chunk.endswith(b"\r") and (more := stream.read(1)):
            chunk += more
        for piece in chunk.splitlines(keepends=True):  # bytes split on \n, \r\n and \r only
            body = piece.rstrip(b"\r\n")
            if parts is not None and size + len(body) > limit:
                head, parts = (b"".join(parts) + body[:HEAD_BYTES])[:HEAD_BYTES], None
            elif parts is not None:
                parts.append(body)
            size += len(body)
            if len(body) < len(piece):
                number += 1
                yield _line(number, parts, size, head, piece[len(body):])
                parts, size, head = [], 0, b""
    if size or parts is None:
        yield _line(number + 1, parts, size, head, b"")


def _line(number: int, parts: list[bytes] | None, size: int, head: bytes, ending: bytes) -> Line:
    if parts is None:
        return Line(number, None, size, head, ending)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return Line(number, data, size, data[:HEAD_BYTES], ending)


def undecodable_line(raw: bytes, error: UnicodeDecodeError, codec: str, offset: int) -> str:
    """Reason for a line that failed strict UTF-8; `offset`: BOM bytes before it (line 1 only)."""
    if codec == "utf-8":
        return f"invalid UTF-8 at byte {error.start + offset} of the line"
    # The line was transcoded, so a byte offset would mean nothing; a column does.
    column = len(raw[:error.start].decode("utf-8", "replace")) + 1
    return (f"invalid {encoding_name(codec)} at column {column} of the line "
            "(an unpaired surrogate or a cut character)")


def invalid_cell(name: str, cell: str, codec: str) -> str | None:
    """Reason for a csv cell holding a NUL or undecodable bytes (kept as surrogates), else None."""
    match = _NUL_OR_SURROGATE.search(cell)
    if match is None:
        return None
    if match.group() == "\x00":
        return f"NUL byte in column '{name}' at position {match.start() + 1}"
    return f"invalid {encoding_name(codec)} in column '{name}'"


class RowTooLarge(Exception):
    """str(error) is the reason: an oversized line, or a multi-line row that outgrew the limit."""


class RowFeed:
    """Lines (as text) for csv.reader that refuse a row growing past the record limit.

    csv pulls lines only until a row is complete, so the bytes pulled since `start_row` are one
    row; raising RowTooLarge from here makes csv drop that row and start afresh on the next call.
    Undecodable bytes are kept as lone surrogates (surrogateescape), so only their row is lost.
    """

    def __init__(self, lines: Iterator[Line], limit: int):
        self.lines, self.limit = lines, limit
        self.row_start, self.last, self.row_bytes, self.row_head = 0, 0, 0, b""

    def start_row(self) -> None:
        self.row_start, self.row_bytes = 0, 0

    def __iter__(self) -> "RowFeed":
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        if not self.row_start:
            self.row_start, self.row_head = line.number, line.head
        self.last = line.number
        self.row_bytes += line.size
        if line.data is None or self.row_bytes > self.limit:
            limit = format_limit(self.limit)
            raise RowTooLarge(f"line of {line.size} bytes exceeds the {limit} record limit"
                              if line.number == self.row_start else
                              f"row starting at line {self.row_start} grows past the {limit} record limit")
        return (line.data + line.ending).decode("utf-8", "surrogateescape")


class DecodeFailure(Exception):
    """A whole-file format holds bytes its encoding cannot decode."""

    def __init__(self, reason: str, line: int, snippet: str):
        super().__init__(reason)
        self.reason, self.line, self.snippet = reason, line, snippet


def iter_text(stream: BinaryIO, codec: str, offset: int) -> Iterator[str]:
    """Strictly decoded text chunks; raises DecodeFailure naming the file byte offset and line.

    `offset` is where the stream starts in the file (the BOM length), so offsets are file offsets.
    """
    decoder = codecs.getincrementaldecoder(codec)()
    consumed, newlines, tail = offset, 0, ""  # tail: the current line so far, for the snippet
    while True:
        data = stream.read(CHUNK_BYTES)
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            block = pending + data
            before = block[:error.start].decode(codec, "replace")
            after = block[error.start:error.start + HEAD_BYTES].decode(codec, "replace")
            at = consumed - len(pending) + error.start
            raise DecodeFailure(f"invalid {encoding_name(codec)} at byte {at} of the file",
                                newlines + before.count("\n") + 1,
                                (tail + before).rsplit("\n", 1)[-1] + after.split("\n", 1)[0]) from None
        consumed += len(data)
        newlines += text.count("\n")
        tail = (tail + text[-SNIPPET_CHARS:]).rsplit("\n", 1)[-1][:SNIPPET_CHARS]
        if text:
            yield text
        if not data:
            return


class JsonStop(Exception):
    """A .json file cannot be read on: `line` is the file line of the problem."""

    def __init__(self, reason: str, line: int, snippet: str, oversized: str = ""):
        super().__init__(reason)
        self.reason, self.line, self.snippet = reason, line, snippet
        self.oversized = oversized  # "element N" / "the JSON value" when a value hit the limit


def json_error(error: Exception) -> str:
    """Reason for a failed json.loads of one record (JSONDecodeError, RecursionError, ValueError)."""
    if isinstance(error, json.JSONDecodeError):
        return f"invalid JSON: {json_message(error)} at column {error.colno}"
    if isinstance(error, RecursionError):
        return "JSON nested too deeply"
    # Python refuses integers over 4300 digits (a CPU-exhaustion guard) with a plain ValueError.
    return f"invalid JSON: {str(error).split(':')[0]}"


def json_message(error: json.JSONDecodeError) -> str:
    return error.msg.removesuffix(" at")  # "Unterminated string starting at" + " at column 5"


def iter_json_values(chunks: Iterator[str], limit: int) -> Iterator[tuple[int, Any]]:
    """(element number, value) of a top-level JSON array, or (1, value) for any other value.

    The array is parsed one element at a time from a sliding buffer, so a large .json costs memory
    for one element, not for the file; an element over `limit` characters stops the file.
    """
    return _JsonValues(chunks, limit).run()


class _JsonValues:
    def __init__(self, chunks: Iterator[str], limit: int):
        self.chunks, self.limit = chunks, limit
        self.buf, self.pos, self.eof = "", 0, False
        self.line, self.column = 1, 0  # file position of buf[0]: line and characters before it
        self.decoder = json.JSONDecoder()

    def run(self) -> Iterator[tuple[int, Any]]:
        first = self.peek()
        if first == "[":
            self.pos += 1
            number, follow = 0, "," if self.peek() != "]" else "]"
            while follow == ",":
                number += 1
                yield number, self.value(number)
                follow = self.peek()
                if follow not in (",", "]"):
                    raise self.stop("Expecting ',' delimiter" if follow else "unexpected end of file")
                self.pos += 1
            if number == 0:
                self.pos += 1  # the "]" of an empty array
        elif first:
            yield 1, self.value(0)
        if self.peek():
            raise self.stop("Extra data")

    def fill(self) -> bool:
        """Append the next chunk, dropping what is parsed; False at end of file."""
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            return False
        # Keep the start of the current line (up to a snippet's worth) so errors can show it.
        cut = max(self.buf.rfind("\n", 0, self.pos) + 1, self.pos - SNIPPET_CHARS, 0)
        dropped = self.buf[:cut]
        newline = dropped.rfind("\n")
        self.line += dropped.count("\n")
        self.column = len(dropped) - newline - 1 if newline >= 0 else self.column + len(dropped)
        self.buf, self.pos = self.buf[cut:] + chunk, self.pos - cut
        return True

    def peek(self) -> str:
        """The next non-whitespace character, "" at end of file."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill():
                return ""

    def value(self, number: int) -> Any:
        self.peek()
        what = f"element {number}" if number else "the JSON value"
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise self.stop(f"JSON nested too deeply ({what})", message_only=True) from None
            except json.JSONDecodeError as error:
                # A buffer cut inside the value fails at (or just before) its end; an error further
                # back is real. An unterminated string is the exception: the string may be long.
                real = error.pos + _MARGIN <= len(self.buf) and "Unterminated" not in error.msg
                if self.eof or real:
                    raise self.stop(error.msg, error.pos) from None
            except ValueError as error:
                raise self.stop(json_error(error), message_only=True) from None
            else:
                # A chunk boundary can also cut a number so that a prefix parses ("2." of "2.5").
                cut = end == len(self.buf) or (
                    isinstance(value, (int, float)) and self.buf[end] not in _FOLLOWERS
                    and end + _MARGIN > len(self.buf))
                if self.eof or not cut:
                    if end - self.pos > self.limit:
                        raise self.too_large(what)
                    self.pos = end
                    return value
            if len(self.buf) - self.pos > self.limit:
                raise self.too_large(what)
            self.fill()

    def too_large(self, what: str) -> JsonStop:
        stop = self.stop(f"{what} is larger than the {format_limit(self.limit)} record limit",
                         message_only=True)
        stop.oversized = what
        return stop

    def stop(self, message: str, pos: int | None = None, message_only: bool = False) -> JsonStop:
        pos = self.pos if pos is None else pos
        line = self.line + self.buf.count("\n", 0, pos)
        start = self.buf.rfind("\n", 0, pos) + 1
        column = pos - start + 1 + (self.column if start == 0 else 0)
        end = self.buf.find("\n", pos, pos + HEAD_BYTES)
        text = self.buf[start:end if end >= 0 else pos + HEAD_BYTES]
        if self.buf[pos:pos + 1] == "\x00":
            reason = f"NUL byte at line {line} column {column}"
        elif message_only:
            reason = f"{message} at line {line} column {column}"
        else:
            reason = f"invalid JSON: {message.removesuffix(' at')} at line {line} column {column}"
        return JsonStop(reason, line, text)


def format_limit(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


def printable(text: str) -> str:
    """Text safe for the quarantine table and the UI: valid UTF-8, NUL written as \\x00.

    Lone surrogates are either bytes a reader kept with surrogateescape (turned back into those
    bytes, then each bad byte into U+FFFD) or escapes from JSON (surrogatepass, then U+FFFD).
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    return raw.decode("utf-8", "replace").replace("\x00", "\\x00")


def snippet(value: str | bytes) -> str:
    """At most SNIPPET_CHARS printable characters of a raw line or record."""
    if isinstance(value, bytes):  # a transcoded line shows its INVALID_MARK as one U+FFFD
        value = value[:HEAD_BYTES].replace(_MARK_UTF8, "\ufffd".encode()).decode("utf-8", "replace")
    return printable(value[:SNIPPET_CHARS])[:SNIPPET_CHARS]


def path_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (kept by the OS as surrogates) shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
