"""A YAML reader for small settings files written by other people: plain mappings, lists and scalars only.

`yaml.safe_load` is safe from code execution, not from size: aliases let 500 bytes expand into
gigabytes (each `&a [*b, *b, ...]` line multiplies the one before), and nesting is composed by
recursion, so a 100k-deep `[[[[...` ends in RecursionError. A settings file needs neither, so this
reader refuses, while composing and before anything expands or recurses deeply:

- files over `MAX_BYTES` (read no further than one byte past the limit);
- anchors (`&name`), aliases (`*name`) and merge keys (`<<`): write the values out;
- explicit tags (`!!python/...`, `!!binary`, `!custom`): settings are plain values;
- nesting deeper than `MAX_DEPTH` collections;
- a key that is not a plain scalar, or the same key twice in one mapping (YAML would keep the last
  one silently).

Every refusal is a `RefusedYaml` with the 1-based line it concerns; texts shown are cut to `SHOWN`
characters so an error message never echoes a huge value.
"""

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 64 * 1024  # a full domain.yaml with every key commented is ~5 KiB
MAX_DEPTH = 8  # collections, the top-level mapping included; settings use 3 (file > section > list)
SHOWN = 100  # characters of a value or key quoted in a message


class RefusedYaml(ValueError):
    """A settings text that is refused; `line` is 1-based, None when it concerns the whole file."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def shorten(value: Any, limit: int = SHOWN) -> str:
    """`repr`-like text of `value`, cut to about `limit` characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def read_capped(path: Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of the regular file `path`, refused past `limit` bytes (never reads more than limit + 1)."""
    try:
        # O_NOFOLLOW: a link swapped in after the caller's checks is not followed; O_NONBLOCK: a FIFO
        # put in its place does not hang the open (it is refused below as not a regular file).
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise RefusedYaml(f"cannot be opened: {error.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RefusedYaml("is not a regular file")
        raw = handle.read(limit + 1)
        if len(raw) > limit:
            raise RefusedYaml(f"is {max(info.st_size, len(raw)):,} bytes; a settings file may hold at most {limit // 1024} KiB")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RefusedYaml(f"is not UTF-8 text (byte {error.start})", raw.count(b"\n", 0, error.start) + 1) from None


def load_plain_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """(the data, its node tree for line numbers) of one YAML document of plain values; RefusedYaml otherwise."""
    loader = None
    try:
        loader = _PlainLoader(text)  # its reader already refuses control characters here
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise RefusedYaml(f"not valid YAML: control character U+{error.character:04X} is not allowed", line) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or "cannot be parsed"
        raise RefusedYaml(f"not valid YAML: {shorten(problem, 200)}", mark.line + 1 if mark else None) from None
    finally:
        if loader is not None:
            loader.dispose()


class _PlainLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, tags, merge keys, duplicate keys and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise RefusedYaml(f"alias *{shorten(event.anchor)} refused: YAML aliases are not allowed "
                              "(they can expand a small file into gigabytes); write the value out", line)
        if event.anchor is not None:
            raise RefusedYaml(f"anchor &{shorten(event.anchor)} refused: YAML anchors and aliases are not "
                              "allowed in a settings file; write the value out", line)
        if event.tag is not None:
            raise RefusedYaml(f"tag {shorten(event.tag)} refused: settings are plain values (no YAML tags)", line)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        # Checked before composing the collection: the composer recurses once per level.
        if self._depth >= MAX_DEPTH:
            raise RefusedYaml(f"nested deeper than {MAX_DEPTH} levels; settings need 3", line)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first_line: dict[str, int] = {}
        for key, _ in node.value:
            line = key.start_mark.line + 1
            if not isinstance(key, yaml.ScalarNode):
                raise RefusedYaml("a key must be a plain name, not a list or mapping", line)
            if key.tag == "tag:yaml.org,2002:merge":
                raise RefusedYaml("merge key << refused: write the keys out", line)
            if key.value in first_line:
                raise RefusedYaml(f"key {shorten(key.value)!r} appears twice (first on line {first_line[key.value]}); "
                                  "keep one", line)
            first_line[key.value] = line
        return node
