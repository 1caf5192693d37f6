"""Record shapes: one parsed JSON-like dict -> a canonical record, or the reason it is unusable.

Pure python (no polars, no dagster) so every reader (.jsonl, .json, .csv, .parquet, .txt) funnels
through the same rules and the same human-readable reasons.

Accepted shapes, tried in this order when a dict carries keys of several:
  chat         {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
               or the ShareGPT alias {"conversations": [{"from": "system"|"human"|"gpt", "value": str}]}
  instruction  {"instruction": str, "input": str (optional), "output": str}
  text         {"text": str}
Every other key is ignored: real corpora carry ids, sources and scores next to the payload.

`parse_record(obj)` returns a `Record` (a NamedTuple, so it also unpacks as the plain
`(kind, roles, contents)` tuple) on success and a `str` reason on failure; callers test with
`isinstance(result, str)`. Contents are returned verbatim (no stripping): cleaning is a later
stage and must be able to see exactly what landed. Two exceptions, both about validity rather than
cleanliness: a string holding a NUL character or a lone surrogate (a JSON "\\u0000" / "\\ud800"
escape) is rejected, because neither belongs in training text and polars cannot store the second;
and a message content given as OpenAI-style parts ([{"type": "text", "text": ...}]) is accepted
when every part is text, the parts joined with "\\n" (a line break keeps separate parts apart
without inventing words); image, audio or other parts are rejected, since only text is trained on.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

KINDS = ("text", "chat", "instruction")
CHAT_ROLES = ("system", "user", "assistant")

# ShareGPT names its speakers differently; the OpenAI names are accepted under "from" as well
# because converters in the wild mix the two vocabularies.
_SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant",
                   "user": "user", "assistant": "assistant"}
_INVALID_CHAR = re.compile("[\x00\ud800-\udfff]")
_PART_JOINER = "\n"


class Record(NamedTuple):
    kind: str             # one of KINDS
    roles: list[str]      # chat: message roles; instruction: ["user", "assistant"]; text: ["text"]
    contents: list[str]   # parallel to roles


def type_name(value: Any) -> str:
    """JSON-flavoured type name for reasons ("got int", "record is a list")."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _blank(value: str) -> bool:
    return not value.strip()


def _show(value: Any, limit: int = 40) -> str:
    """User data quoted in a reason: short, and without characters that break the report."""
    text = str(value)
    text = text[:limit] + ("..." if len(text) > limit else "")
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _invalid_char(name: str, value: str) -> str | None:
    """Reason when `value` holds a NUL or a lone surrogate, else None."""
    # Fast path first: str.isascii() is O(1) in CPython and "in" is a memchr, a regex is neither.
    if "\x00" not in value and value.isascii():
        return None
    match = _INVALID_CHAR.search(value)
    if match is None:
        return None
    position = match.start() + 1
    if match.group() == "\x00":
        return f"{name} contains a NUL character at position {position}"
    return f"{name} contains an unpaired surrogate U+{ord(match.group()):04X} at position {position}"


def parse_record(obj: Any) -> Record | str:
    """Classify and validate one record; a `str` result is the quarantine reason."""
    if not isinstance(obj, dict):
        name = type_name(obj)
        return f"record is {'an' if name[0] in 'aeiou' else 'a'} {name}, expected a JSON object"
    # Null-valued keys do not pick a shape: csv/parquet rows carry every column of the file, and a
    # text row of a mixed file has instruction=None. If only null payload keys exist, fall back to
    # plain key presence so the reason says "text is null" rather than "unrecognised shape".
    present = {k for k, v in obj.items() if v is not None}
    shape = _shape(present) or _shape(set(obj))
    if shape == "chat":
        if "messages" in present or ("conversations" not in present and "messages" in obj):
            return _parse_chat(obj.get("messages"), key="messages")
        return _parse_chat(obj.get("conversations"), key="conversations")
    if shape == "instruction":
        return _parse_instruction(obj)
    if shape == "text":
        return _parse_text(obj.get("text"))
    keys = [_show(key) for key in list(obj)[:10]]  # enough to recognise the source, bounded
    return (f"unrecognised record shape: keys {keys}; "
            "expected text, messages or instruction/output")


def _shape(keys: set) -> str | None:
    if "messages" in keys or "conversations" in keys:
        return "chat"
    if "instruction" in keys or "output" in keys:
        return "instruction"
    if "text" in keys:
        return "text"
    return None


def _parse_text(text: Any) -> Record | str:
    if text is None:
        return "text is null"
    if not isinstance(text, str):
        return f"text must be a string, got {type_name(text)}"
    if _blank(text):
        return "empty text"
    return _invalid_char("text", text) or Record("text", ["text"], [text])


def _parse_instruction(obj: dict) -> Record | str:
    instruction, output, extra = obj.get("instruction"), obj.get("output"), obj.get("input")
    for name, value in (("instruction", instruction), ("output", output)):
        if value is None:
            return f"instruction record has no {name}"
        if not isinstance(value, str):
            return f"{name} must be a string, got {type_name(value)}"
        if _blank(value):
            return f"empty {name}"
    if extra is not None and not isinstance(extra, str):
        return f"input must be a string, got {type_name(extra)}"
    for name, value in (("instruction", instruction), ("input", extra or ""), ("output", output)):
        if reason := _invalid_char(name, value):
            return reason
    # The input is context for the instruction; a blank one would only add a dangling "\n\n".
    prompt = instruction + ("\n\n" + extra if extra and not _blank(extra) else "")
    return Record("instruction", ["user", "assistant"], [prompt, output])


def _parse_chat(messages: Any, *, key: str) -> Record | str:
    if not isinstance(messages, list):
        return f"{key} must be a list, got {type_name(messages)}"
    if not messages:
        return f"{key} is empty"
    roles: list[str] = []
    contents: list[str] = []
    for number, message in enumerate(messages, start=1):
        parsed = _parse_message(message)
        if isinstance(parsed, str):
            return f"message {number}: {parsed}"
        role, content = parsed
        if role == "assistant" and _blank(content):
            return f"message {number}: empty assistant content"
        roles.append(role)
        contents.append(content)
    # Without an assistant turn there is nothing to learn from: the loss only covers replies.
    if "assistant" not in roles:
        return "chat has no assistant message"
    return Record("chat", roles, contents)


def _parse_message(message: Any) -> tuple[str, str] | str:
    if not isinstance(message, dict):
        return f"must be an object, got {type_name(message)}"
    # A message is read by the vocabulary it actually uses, so a "conversations" list written with
    # role/content (or the reverse) still parses; the reasons name the keys the data used.
    uses_sharegpt = ("from" in message or "value" in message) and "role" not in message
    role_key, content_key = ("from", "value") if uses_sharegpt else ("role", "content")
    role, content = message.get(role_key), message.get(content_key)
    if role is None:
        return f"missing {role_key}"
    if not isinstance(role, str):
        return f"{role_key} must be a string, got {type_name(role)}"
    if uses_sharegpt:
        if role not in _SHAREGPT_ROLES:
            return f"from '{_show(role)}' is not one of system/human/gpt"
        role = _SHAREGPT_ROLES[role]
    elif role not in CHAT_ROLES:
        return f"role '{_show(role)}' is not one of system/user/assistant"
    if content is None:
        return f"missing {content_key}"
    if isinstance(content, list) and not uses_sharegpt:
        content, reason = _join_parts(content)
        if reason:
            return reason
    elif not isinstance(content, str):
        also = "" if uses_sharegpt else " or a list of text parts"
        return f"{content_key} must be a string{also}, got {type_name(content)}"
    return _invalid_char(content_key, content) or (role, content)


def _join_parts(parts: list) -> tuple[str, str | None]:
    """OpenAI-style content parts as (one text, None), or ("", the reason they cannot be)."""
    if not parts:
        return "", "content is an empty list of parts"
    texts = []
    for number, part in enumerate(parts, start=1):
        if not isinstance(part, dict):
            return "", f"content part {number} must be an object, got {type_name(part)}"
        kind = part.get("type")
        if kind != "text":
            shown = "no type" if kind is None else f"type '{_show(kind)}'"
            return "", f"content part {number} has {shown}; only text parts can be trained on"
        text = part.get("text")
        if not isinstance(text, str):
            return "", f"content part {number}: text must be a string, got {type_name(text)}"
        texts.append(text)
    return _PART_JOINER.join(texts), None
