"""The fast path's encoding primitives, shared by batched.py (rows a batch at a time) and
splitting.py (long conversations split at turns): the Rust backend of a fast tokenizer and its
batched encodings, conversations rendered once with their answer spans, and labels from token
offsets with numpy. What they produce is checked, through batched.py, against the per-row
reference (formatting.py).

Pure: no dagster.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from assets.models.batches import IGNORE_INDEX
from assets.models.chat_format import (
    CLOSE,
    MAX_GAP_TOKENS,
    OPEN,
    TEMPLATE_DATE,
    ChatFormat,
    TemplateRefused,
    marker_spans,
    render,
    searched_spans,
)
from assets.tokenization.formatting import EncodedRow

ENCODE_BATCH = 128  # texts per encode_batch call (the Rust encoder's own threads split each call)


@dataclass(frozen=True)


class Encoded:
    """One record's examples as int64 arrays (ids, labels, truncated), or why it has none."""

    examples: list[tuple[np.ndarray, np.ndarray, bool]] = field(default_factory=list)
    rejected: str | None = None
    system_folded: bool = False
    exchanges_dropped: int = 0

    @classmethod
    def of(cls, row: EncodedRow) -> "Encoded":
        """The reference path's result, as arrays."""
        return cls([(np.asarray(e.input_ids, dtype=np.int64), np.asarray(e.labels, dtype=np.int64), e.truncated) for e in row.examples],
                   row.rejected, row.system_folded, row.exchanges_dropped)


def supervised(labels: np.ndarray) -> int:
    """count_supervised for an array: labels after the first that are not IGNORE_INDEX."""
    return int(np.count_nonzero(labels[1:] != IGNORE_INDEX))


def fast_backend(tokenizer: Any) -> Any:
    """The Rust tokenizer behind a fast tokenizer, set as transformers sets it for an unpadded,
    untruncated call (what `tokenizer(text)` does before encoding); None for a slow tokenizer."""
    backend = getattr(tokenizer, "_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
    if backend is None:
        return None
    if backend.truncation is not None:
        backend.no_truncation()
    if backend.padding is not None:
        backend.no_padding()
    return backend


def _encode_batch(backend: Any, texts: list[str], split_special_tokens: bool, offsets: bool) -> list[Any]:
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = split_special_tokens
    try:
        if offsets:
            return backend.encode_batch(texts, add_special_tokens=False)
        return backend.encode_batch_fast(texts, add_special_tokens=False)
    finally:
        backend.encode_special_tokens = previous


def encodings(backend: Any, texts: list[str], keys: Any, split_special_tokens: bool, offsets: bool = True) -> Iterator[tuple[Any, Any]]:
    """(key, encoding) pairs, encoded ENCODE_BATCH texts at a time: a Rust Encoding keeps tokens,
    offsets and masks (~100 bytes a token), so a whole chunk's at once would dominate memory."""
    keys = list(keys)
    for start in range(0, len(texts), ENCODE_BATCH):
        yield from zip(keys[start:start + ENCODE_BATCH], _encode_batch(backend, texts[start:start + ENCODE_BATCH], split_special_tokens, offsets))


@dataclass


class Chat:
    """A conversation on the fast path: its messages as rendered, then its text and answer spans."""

    messages: list[dict[str, str]]  # as rendered (system folded where it has to be)
    folded: bool
    text: str = ""  # the plain rendering (may be set beforehand, where it is already known)
    spans: list[tuple[int, int]] | None = None


def render_spans(tokenizer: Any, fmt: ChatFormat, chats: dict[int, Chat], check_system: bool = True) -> None:
    """render_row (check_system) + render_with_spans for each chat; a chat left with spans None
    (refused, or the template dropped its system prompt) takes the reference path. A chat whose
    text is set already holds its plain rendering (only the marked one is rendered)."""
    render = renderer(tokenizer, fmt)
    for chat in chats.values():
        text = chat.text or render(chat.messages)  # a plain rendering already made is not made again
        if text is None:
            continue
        if check_system and not chat.folded and any(m["content"] not in text for m in chat.messages if m["role"] == "system"):
            continue  # the template dropped the system prompt here: render_row folds and renders again
        answers = [m["content"] for m in chat.messages if m["role"] == "assistant"]
        spans = None
        if not any(OPEN in a or CLOSE in a for a in answers):
            marked = render(_with_markers(chat.messages))
            spans = None if marked is None else marker_spans(marked, len(answers), text)
        if spans is None:
            try:
                spans = searched_spans(text, answers)
            except TemplateRefused:
                continue
        chat.text, chat.spans = text, spans


def _with_markers(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [dict(m, content=OPEN + m["content"] + CLOSE) if m["role"] == "assistant" else m for m in messages]


_RENDERERS: dict[tuple, Any] = {}


def renderer(tokenizer: Any, fmt: ChatFormat) -> Any:
    """chat_format.render as a function of the messages, None where the template refuses them.

    apply_chat_template spends more on copying and normalising each conversation (for message
    objects, media and None values, which plain {role, content} strings do not have) than jinja
    spends rendering it; this calls the same compiled template with the same variables. It is
    checked once against apply_chat_template, and not used where transformers' internals differ."""
    import jinja2

    key = (id(tokenizer), fmt.template, repr(tokenizer.special_tokens_map))
    if key in _RENDERERS:
        return _RENDERERS[key]

    def reference(messages: list[dict[str, str]]) -> str | None:
        try:
            return render(tokenizer, fmt, messages)
        except TemplateRefused:
            return None

    chosen = reference
    try:
        from transformers.utils.chat_template_utils import _compile_jinja_template, _plain_template_data

        compiled = _compile_jinja_template(fmt.template)
        variables = _plain_template_data({**tokenizer.special_tokens_map, "date_string": TEMPLATE_DATE})

        def direct(messages: list[dict[str, str]]) -> str | None:
            try:
                return compiled.render(messages=messages, tools=None, documents=None, add_generation_prompt=False, **variables)
            except jinja2.TemplateError:
                return None

        probe = [{"role": "system", "content": "Rules."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                 {"role": "user", "content": "And?"}, {"role": "assistant", "content": "<think>x</think>Done."}]
        if all(direct(p) == reference(p) for p in (probe, probe[1:], probe[1:3], _with_markers(probe[1:]))):
            chosen = direct
    except ImportError:
        pass
    _RENDERERS.clear()  # one tokenizer at a time in practice; never an unbounded cache
    _RENDERERS[key] = chosen
    return chosen


def arrays(encoding: Any) -> tuple[np.ndarray, np.ndarray]:
    """An encoding's ids (int64) and character offsets (n x 2 int64) as numpy arrays."""
    ids = np.array(encoding.ids, dtype=np.int64)
    # fromiter over the flattened pairs: ~2x faster than np.array on a list of tuples.
    offsets = np.fromiter(chain.from_iterable(encoding.offsets), dtype=np.int64, count=2 * len(ids)).reshape(-1, 2)
    return ids, offsets


def label(tokenizer: Any, fmt: ChatFormat, chat: Chat, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """render_conversation's ids and labels from one encoding of chat.text (`arrays`): supervise_spans
    with numpy, then EOS and BOS."""
    mask, ended = _supervise(ids, offsets, chat.text, chat.spans, fmt.special_ids)
    labels = np.where(mask, ids, IGNORE_INDEX)
    if chat.spans and chat.messages[-1]["role"] == "assistant" and not ended[-1] and tokenizer.eos_token_id is not None:
        ids, labels = np.append(ids, tokenizer.eos_token_id), np.append(labels, tokenizer.eos_token_id)
    if fmt.adds_bos and (not len(ids) or ids[0] != fmt.bos_id):
        ids, labels = np.insert(ids, 0, fmt.bos_id), np.insert(labels, 0, IGNORE_INDEX)
    return ids, labels


def _supervise(ids: np.ndarray, offsets: np.ndarray, text: str, spans: list[tuple[int, int]],
               special_ids: frozenset[int]) -> tuple[np.ndarray, list[bool]]:
    """chat_format.supervise_spans, the token walks done as array searches (same cursor, same result)."""
    n = len(ids)
    mask = np.zeros(n, dtype=bool)
    starts, ends = offsets[:, 0], offsets[:, 1]
    ended, t = [], 0
    for start, end in spans:
        t = _first(ends, t, lambda tail: tail > start)  # skip tokens that end before the answer
        stop = _first(starts, t, lambda tail: tail >= end)  # label tokens that start inside it
        mask[t:stop] = True
        t = gap = stop
        while gap < n and gap - t < MAX_GAP_TOKENS and int(ids[gap]) not in special_ids and text[starts[gap]:ends[gap]].isspace():
            gap += 1
        closed = gap < n and int(ids[gap]) in special_ids
        if closed:
            mask[t:gap + 1] = True
            t = gap + 1
        ended.append(closed)
    return mask, ended


def _first(values: np.ndarray, t: int, condition: Any) -> int:
    """The first index >= t where condition holds, or len(values)."""
    hits = np.flatnonzero(condition(values[t:]))
    return t + int(hits[0]) if len(hits) else len(values)
