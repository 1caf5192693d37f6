"""Records to examples a batch at a time: the same tokens and labels as `formatting.encode_record`,
at the fast tokenizer's speed.

`encode_record` is the reference (read it first); this module produces exactly its output, and a
test compares the two on every kind of row. What changes is only how the work is done:
- chat templates are rendered once per conversation (plain and with markers), not once per turn,
  through the compiled template itself rather than `apply_chat_template`'s per-call copying;
- the rendered texts of a batch are encoded in one call of the Rust tokenizer (`encode_batch`),
  skipping transformers' per-token conversion to Python lists of dicts;
- labels come from the token offsets with numpy (`supervise_spans` walks token by token in Python);
- a conversation longer than max_seq_len is split by the reference's greedy, deciding on token
  counts without offsets (`_part_lengths`); only the examples it keeps are labelled.
Rows off the common path (a template that refuses, moves or drops a turn, a slow tokenizer without
offsets) go through the per-row reference code, so what they become cannot drift from it.

Pure: no dagster.
"""

from collections.abc import Generator, Iterator
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
    _marker_spans,
    _searched_spans,
    fold_system,
    render,
)
from assets.tokenization.formatting import EncodedRow, encode_chat, encode_text

ENCODE_BATCH = 128  # texts per encode_batch call (the Rust encoder's own threads split each call)
SPECULATE = 8  # most candidate parts of a long conversation rendered in one batch when it is split


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


def encode_rows(tokenizer: Any, fmt: ChatFormat, kinds: list[str], roles: list[list[str]], contents: list[list[str]],
                max_seq_len: int) -> list[Encoded]:
    """[encode_record(...) for each row], as arrays, computed a batch at a time."""
    backend = _backend(tokenizer)
    out: list[Encoded | None] = [None] * len(kinds)
    texts = [i for i, kind in enumerate(kinds) if kind == "text"]
    chats = [i for i, kind in enumerate(kinds) if kind != "text"]
    if backend is None:  # a slow (Python) tokenizer: no batch encoder, no offsets to label from
        for i in range(len(kinds)):
            if kinds[i] == "text":
                out[i] = Encoded.of(EncodedRow(encode_text(tokenizer, "\n\n".join(contents[i]), max_seq_len, fmt.document_bos)))
            else:
                out[i] = Encoded.of(encode_chat(tokenizer, fmt, roles[i], contents[i], max_seq_len))
        return out  # type: ignore[return-value]
    for i, encoded in zip(texts, _encode_texts(tokenizer, backend, fmt, ["\n\n".join(contents[i]) for i in texts], max_seq_len)):
        out[i] = encoded
    for i, encoded in zip(chats, _encode_chats(tokenizer, backend, fmt, [roles[i] for i in chats], [contents[i] for i in chats], max_seq_len)):
        out[i] = encoded
    return out  # type: ignore[return-value]


def _backend(tokenizer: Any) -> Any:
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


def _encodings(backend: Any, texts: list[str], keys: Any, split_special_tokens: bool, offsets: bool = True) -> Iterator[tuple[Any, Any]]:
    """(key, encoding) pairs, encoded ENCODE_BATCH texts at a time: a Rust Encoding keeps tokens,
    offsets and masks (~100 bytes a token), so a whole chunk's at once would dominate memory."""
    keys = list(keys)
    for start in range(0, len(texts), ENCODE_BATCH):
        yield from zip(keys[start:start + ENCODE_BATCH], _encode_batch(backend, texts[start:start + ENCODE_BATCH], split_special_tokens, offsets))


def _encode_texts(tokenizer: Any, backend: Any, fmt: ChatFormat, texts: list[str], max_seq_len: int) -> list[Encoded]:
    """encode_text for a batch: [BOS] + text + EOS, all supervised, in near-equal windows."""
    if not texts:
        return []
    head = [] if fmt.document_bos is None else [fmt.document_bos]
    out = []
    for _, encoding in _encodings(backend, texts, range(len(texts)), split_special_tokens=True, offsets=False):
        ids = np.array(head + encoding.ids + [tokenizer.eos_token_id], dtype=np.int64)
        windows = -(-len(ids) // max_seq_len)
        # Python's round (half to even), as encode_text computes the bounds.
        bounds = [round(i * len(ids) / windows) for i in range(windows + 1)]
        out.append(Encoded([(ids[a:b], ids[a:b], False) for a, b in zip(bounds, bounds[1:])]))
    return out


@dataclass
class _Chat:
    messages: list[dict[str, str]]  # as rendered (system folded where it has to be)
    folded: bool
    text: str = ""
    spans: list[tuple[int, int]] | None = None


def _encode_chats(tokenizer: Any, backend: Any, fmt: ChatFormat, roles: list[list[str]], contents: list[list[str]],
                  max_seq_len: int) -> list[Encoded]:
    out: list[Encoded | None] = [None] * len(roles)
    pending: dict[int, _Chat] = {}
    for i, (row_roles, row_contents) in enumerate(zip(roles, contents)):
        messages = [{"role": r, "content": c} for r, c in zip(row_roles, row_contents)]
        if fmt.control_tokens is not None and any(fmt.control_tokens.search(c) for c in row_contents):
            out[i] = Encoded.of(encode_chat(tokenizer, fmt, row_roles, row_contents, max_seq_len))  # the refusal, worded once
            continue
        folded = "system" in row_roles and not fmt.accepts_system
        pending[i] = _Chat(fold_system(messages) if folded else messages, folded)
    _render_spans(tokenizer, fmt, pending)
    ready = {i: chat for i, chat in pending.items() if chat.spans is not None}
    for i in pending.keys() - ready.keys():  # refused, or the template moved things: the reference path
        out[i] = Encoded.of(encode_chat(tokenizer, fmt, roles[i], contents[i], max_seq_len))
    order = sorted(ready)
    splits = {}
    for i, encoding in _encodings(backend, [ready[i].text for i in order], order, tokenizer.split_special_tokens):
        chat = ready[i]
        ids, labels = _label(tokenizer, fmt, chat, encoding)
        if len(ids) > max_seq_len:
            splits[i] = _split(tokenizer, fmt, roles[i], contents[i], chat.folded, max_seq_len, chat.text, len(ids) / max(len(chat.text), 1))
        elif supervised(labels):
            out[i] = Encoded([(ids, labels, False)], system_folded=chat.folded)
        else:
            out[i] = Encoded(rejected="the conversation has no assistant turn to learn from", system_folded=chat.folded)
    for i, encoded in _in_step(tokenizer, fmt, splits, max_seq_len).items():
        out[i] = encoded
    return out  # type: ignore[return-value]


def _render_spans(tokenizer: Any, fmt: ChatFormat, chats: dict[int, _Chat], check_system: bool = True) -> None:
    """render_row (check_system) + render_with_spans for each chat; a chat left with spans None
    (refused, or the template dropped its system prompt) takes the reference path."""
    render = _renderer(tokenizer, fmt)
    for chat in chats.values():
        text = render(chat.messages)
        if text is None:
            continue
        if check_system and not chat.folded and any(m["content"] not in text for m in chat.messages if m["role"] == "system"):
            continue  # the template dropped the system prompt here: render_row folds and renders again
        answers = [m["content"] for m in chat.messages if m["role"] == "assistant"]
        spans = None
        if not any(OPEN in a or CLOSE in a for a in answers):
            marked = render(_with_markers(chat.messages))
            spans = None if marked is None else _marker_spans(marked, len(answers), text)
        if spans is None:
            try:
                spans = _searched_spans(text, answers)
            except TemplateRefused:
                continue
        chat.text, chat.spans = text, spans


def _with_markers(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [dict(m, content=OPEN + m["content"] + CLOSE) if m["role"] == "assistant" else m for m in messages]


_RENDERERS: dict[tuple, Any] = {}


def _renderer(tokenizer: Any, fmt: ChatFormat) -> Any:
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


def _label(tokenizer: Any, fmt: ChatFormat, chat: _Chat, encoding: Any) -> tuple[np.ndarray, np.ndarray]:
    """render_conversation's ids and labels from one encoding: supervise_spans with numpy, then EOS and BOS."""
    ids = np.array(encoding.ids, dtype=np.int64)
    # fromiter over the flattened pairs: ~2x faster than np.array on a list of tuples.
    offsets = np.fromiter(chain.from_iterable(encoding.offsets), dtype=np.int64, count=2 * len(ids)).reshape(-1, 2)
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


def _split(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str], fold: bool, max_seq_len: int,
           whole_text: str, tokens_per_char: float) -> Generator[tuple[str, list], list, Encoded]:
    """encode_chat's split at turn boundaries (formatting._split_at_turns, the same greedy), as a
    generator: it yields what it needs next, ("lengths", conversations) or ("examples",
    conversations), is sent their lengths or (ids, labels) (None where the fast path cannot render
    one), and returns the row's Encoded. `_in_step` runs many rows' greedies together, so each step
    renders and encodes the parts of every long row in one batch.

    The greedy decides on lengths alone (`_part_lengths`: no offsets, no marked render), from where
    the current example starts asking for as many growing candidates as likely fit (at most
    SPECULATE) and one more; only the examples it keeps are labelled, all at the end."""
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    system = [m for m in messages if m["role"] == "system"]
    exchanges: list[list[dict[str, str]]] = [[]]
    for message in (m for m in messages if m["role"] != "system"):
        exchanges[-1].append(message)
        if message["role"] == "assistant":
            exchanges.append([])
    exchanges = [e for e in exchanges if any(m["role"] == "assistant" for m in e)]

    def conversation(a: int, b: int) -> list[dict[str, str]]:
        final = system + [m for e in exchanges[a:b] for m in e]
        return fold_system(final) if fold else final

    def lengths(ranges: list[tuple[int, int]]) -> Generator[tuple[str, list], list, list[int]]:
        conversations = [conversation(a, b) for a, b in ranges]
        results = yield "lengths", conversations
        for i, value in enumerate(results):
            if value is None:  # the template refused or moved something: the reference renders it (or
                # raises) only when it is the next part the greedy takes, as the per-row code would.
                return [len(_reference_part(tokenizer, fmt, conversations[0])[0])] if i == 0 else results[:i]
        return results

    # Likely tokens of each exchange, from the whole conversation's encoding: its characters (with
    # the template's share per message) times the conversation's tokens per character. Only a
    # guess of how many candidates to render at once; every decision is taken on real encodings.
    per_message = max(0.0, (len(whole_text) - sum(len(m["content"]) for m in messages)) / max(len(messages), 1))
    likely = np.array([tokens_per_char * sum(len(m["content"]) + per_message for m in e) for e in exchanges])
    head = tokens_per_char * sum(len(m["content"]) + per_message for m in system)
    # The examples in order, as exchange ranges (a, b, cut); fitted: exchanges[first:j] fit in one.
    pieces: list[tuple[int, int, bool]] = []
    first, fitted, j = 0, False, 0
    try:
        while j < len(exchanges):
            if first == j:  # nothing held yet: the candidate is the exchange alone
                found = yield from lengths([(j, j + 1)])
            else:
                sizes = head + np.cumsum(likely[first:])[j - first:]  # candidates (first, j+1), (first, j+2), ...
                fits = int(np.count_nonzero(sizes <= max_seq_len))
                found = yield from lengths([(first, b) for b in range(j + 1, min(len(exchanges), j + 1 + min(fits, SPECULATE)) + 1)])
            for length in found:
                if length <= max_seq_len:
                    fitted, j = True, j + 1
                    continue
                if fitted:
                    pieces.append((first, j, False))
                single = length if first == j else (yield from lengths([(j, j + 1)]))[0]
                if single <= max_seq_len:
                    first, fitted, j = j, True, j + 1
                else:  # one exchange too long alone: cut at max_seq_len
                    pieces.append((j, j + 1, True))
                    first, fitted, j = j + 1, False, j + 1
                break  # the current example changed: look ahead again from it
        if fitted:
            pieces.append((first, j, False))
        conversations = [conversation(a, b) for a, b, _ in pieces]
        encoded = (yield "examples", conversations) if pieces else []
        encoded = [_reference_part(tokenizer, fmt, c) if e is None else e for c, e in zip(conversations, encoded)]
    except TemplateRefused as error:
        return Encoded(rejected=str(error), system_folded=fold)
    examples: list[tuple[np.ndarray, np.ndarray, bool]] = []
    dropped = 0
    for (_, _, cut), (ids, labels) in zip(pieces, encoded):
        if not cut:
            examples.append((ids, labels, False))
        elif supervised(labels[:max_seq_len]):
            examples.append((ids[:max_seq_len], labels[:max_seq_len], True))
        else:
            dropped += 1
    examples = [e for e in examples if supervised(e[1])]
    if not examples:
        reason = (f"no assistant turn starts within max_seq_len ({max_seq_len} tokens)" if dropped
                  else "the conversation has no assistant turn to learn from")
        return Encoded(rejected=reason, system_folded=fold, exchanges_dropped=dropped)
    return Encoded(examples, system_folded=fold, exchanges_dropped=dropped)


def _in_step(tokenizer: Any, fmt: ChatFormat, greedies: dict[int, Generator[tuple[str, list], list, Encoded]],
             max_seq_len: int) -> dict[int, Encoded]:
    """Run the rows' split greedies side by side: every step, all the parts they ask for in one batch
    of each kind (lengths, examples)."""
    out: dict[int, Encoded] = {}
    asks = {}
    for i, greedy in greedies.items():
        try:
            asks[i] = next(greedy)
        except StopIteration as done:
            out[i] = done.value
    while asks:
        answers: dict[int, list] = {i: [] for i in asks}
        for kind in ("lengths", "examples"):
            flat = [(i, conversation) for i, (asked, conversations) in asks.items() if asked == kind for conversation in conversations]
            conversations = [conversation for _, conversation in flat]
            results = _part_lengths(tokenizer, fmt, conversations, max_seq_len) if kind == "lengths" else _encode_parts(tokenizer, fmt, conversations)
            for (i, _), result in zip(flat, results):
                answers[i].append(result)
        asks = {}
        for i, answer in answers.items():
            try:
                asks[i] = greedies[i].send(answer)
            except StopIteration as done:
                out[i] = done.value
    return out


def _part_lengths(tokenizer: Any, fmt: ChatFormat, conversations: list[list[dict[str, str]]], max_seq_len: int) -> list[int | None]:
    """What len(_encode_parts(...)[i][0]) says about fitting in max_seq_len, for less: the plain
    rendering's token count from encode_batch_fast (no offsets), plus the BOS the tokenizer's
    convention adds. Labels are not needed to decide, except where an added EOS would decide (the
    count is exactly max_seq_len), and the EOS depends on whether an end-of-turn token closed the
    last answer: those, and renderings whose answers cannot be found by search (markers would
    decide), take _encode_parts. None where the fast path cannot render (as _encode_parts)."""
    render = _renderer(tokenizer, fmt)
    out: list[int | None] = [None] * len(conversations)
    texts, ready, exact = [], [], []
    for i, messages in enumerate(conversations):
        text = render(messages)
        if text is None:
            continue
        try:
            _searched_spans(text, [m["content"] for m in messages if m["role"] == "assistant"])
        except TemplateRefused:
            exact.append(i)
            continue
        texts.append(text)
        ready.append(i)
    for i, encoding in _encodings(_backend(tokenizer), texts, ready, tokenizer.split_special_tokens, offsets=False):
        ids = encoding.ids
        length = len(ids) + (fmt.adds_bos and (not ids or ids[0] != fmt.bos_id))
        messages = conversations[i]
        eos_possible = tokenizer.eos_token_id is not None and messages[-1]["role"] == "assistant"
        if length == max_seq_len and eos_possible:
            exact.append(i)
        else:
            out[i] = length
    for i, part in zip(exact, _encode_parts(tokenizer, fmt, [conversations[i] for i in exact])):
        out[i] = None if part is None else len(part[0])
    return out


def _encode_parts(tokenizer: Any, fmt: ChatFormat, conversations: list[list[dict[str, str]]]) -> list[Any]:
    """render_conversation(...).example of each conversation as (ids, labels) arrays, or None where
    the fast path cannot render it (the reference then decides)."""
    chats = {i: _Chat(messages, False) for i, messages in enumerate(conversations)}
    _render_spans(tokenizer, fmt, chats, check_system=False)
    ready = [i for i in chats if chats[i].spans is not None]
    out: list[Any] = [None] * len(conversations)
    for i, encoding in _encodings(_backend(tokenizer), [chats[i].text for i in ready], ready, tokenizer.split_special_tokens):
        out[i] = _label(tokenizer, fmt, chats[i], encoding)
    return out


def _reference_part(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    from assets.tokenization.formatting import render_conversation

    example = render_conversation(tokenizer, fmt, messages).example
    return np.asarray(example.input_ids, dtype=np.int64), np.asarray(example.labels, dtype=np.int64)
