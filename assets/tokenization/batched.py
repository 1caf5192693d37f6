"""Records to examples a batch at a time: the same tokens and labels as `formatting.encode_record`,
at the fast tokenizer's speed.

`encode_record` is the reference (read it first); this module produces exactly its output, and a
test compares the two on every kind of row. What changes is only how the work is done:
- chat templates are rendered once per conversation (plain and with markers), not once per turn,
  through the compiled template itself rather than `apply_chat_template`'s per-call copying; a
  conversation too long for max_seq_len whatever EOS is added gets no marked rendering nor labels
  as a whole (only its parts do), once its answers are found in the plain rendering;
- the rendered texts of a batch are encoded in one call of the Rust tokenizer (`encode_batch`),
  skipping transformers' per-token conversion to Python lists of dicts;
- labels come from the token offsets with numpy (`supervise_spans` walks token by token in Python);
- a conversation longer than max_seq_len is split by the reference's greedy, deciding on token
  counts (splitting.py; both build on encoding.py's primitives), most of them taken from an
  encoding made already (prefixes.py) rather than by encoding every candidate part; only the
  examples it keeps are labelled.
Rows off the common path (a template that refuses, moves or drops a turn, a slow tokenizer without
offsets) go through the per-row reference code, so what they become cannot drift from it.

Pure: no dagster.
"""

from typing import Any

import numpy as np

from assets.models.chat_format import (
    ChatFormat,
    TemplateRefused,
    fold_system,
    searched_spans,
)
from assets.tokenization.encoding import Chat, Encoded, arrays, encodings, fast_backend, label, render_spans, renderer, supervised
from assets.tokenization.formatting import EncodedRow, encode_chat, encode_text
from assets.tokenization.splitting import in_step, split


def encode_rows(tokenizer: Any, fmt: ChatFormat, kinds: list[str], roles: list[list[str]], contents: list[list[str]],
                max_seq_len: int) -> list[Encoded]:
    """[encode_record(...) for each row], as arrays, computed a batch at a time."""
    backend = fast_backend(tokenizer)
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


def _answers_found(chat: Chat) -> bool:
    """Whether searched_spans finds every answer in the plain rendering (then render_with_spans finds
    spans one way or the other and does not refuse the conversation)."""
    try:
        searched_spans(chat.text, [m["content"] for m in chat.messages if m["role"] == "assistant"])
    except TemplateRefused:
        return False
    return True


def _encode_texts(tokenizer: Any, backend: Any, fmt: ChatFormat, texts: list[str], max_seq_len: int) -> list[Encoded]:
    """encode_text for a batch: [BOS] + text + EOS, all supervised, in near-equal windows."""
    if not texts:
        return []
    head = [] if fmt.document_bos is None else [fmt.document_bos]
    out = []
    for _, encoding in encodings(backend, texts, range(len(texts)), split_special_tokens=True, offsets=False):
        ids = np.array(head + encoding.ids + [tokenizer.eos_token_id], dtype=np.int64)
        windows = -(-len(ids) // max_seq_len)
        # Python's round (half to even), as encode_text computes the bounds.
        bounds = [round(i * len(ids) / windows) for i in range(windows + 1)]
        out.append(Encoded([(ids[a:b], ids[a:b], False) for a, b in zip(bounds, bounds[1:])]))
    return out


def _encode_chats(tokenizer: Any, backend: Any, fmt: ChatFormat, roles: list[list[str]], contents: list[list[str]],
                  max_seq_len: int) -> list[Encoded]:
    out: list[Encoded | None] = [None] * len(roles)
    pending: dict[int, Chat] = {}
    for i, (row_roles, row_contents) in enumerate(zip(roles, contents)):
        messages = [{"role": r, "content": c} for r, c in zip(row_roles, row_contents)]
        if fmt.control_tokens is not None and any(fmt.control_tokens.search(c) for c in row_contents):
            out[i] = Encoded.of(encode_chat(tokenizer, fmt, row_roles, row_contents, max_seq_len))  # the refusal, worded once
            continue
        folded = "system" in row_roles and not fmt.accepts_system
        pending[i] = Chat(fold_system(messages) if folded else messages, folded)
    render = renderer(tokenizer, fmt)
    for i, chat in pending.items():  # the plain renderings (render_spans makes the marked ones, where needed)
        text = render(chat.messages)
        # Unrendered, or the template dropped the system prompt (render_row folds and renders again).
        if text is not None and (chat.folded or all(m["content"] in text for m in chat.messages if m["role"] == "system")):
            chat.text = text
    ready = {i: chat for i, chat in pending.items() if chat.text}
    elsewhere = sorted(pending.keys() - ready.keys())  # refused, or the template moved things: the reference path
    order = sorted(ready)
    splits, wholes = {}, {}
    for i, encoding in encodings(backend, [ready[i].text for i in order], order, tokenizer.split_special_tokens):
        chat = ready[i]
        raw_ids, offsets = arrays(encoding)
        length = len(raw_ids) + (fmt.adds_bos and (not len(raw_ids) or raw_ids[0] != fmt.bos_id))
        if length > max_seq_len and _answers_found(chat):
            # Too long whatever EOS is added: split, without the spans and labels of the whole (the
            # reference would find them, so it would not refuse the row either).
            splits[i] = split(tokenizer, fmt, roles[i], contents[i], chat.folded, max_seq_len, chat.text, length / max(len(chat.text), 1))
            wholes[i] = (chat.text, raw_ids, offsets)  # the split's parts are mostly pieces of it
            continue
        render_spans(tokenizer, fmt, {i: chat}, check_system=False)
        if chat.spans is None:
            elsewhere.append(i)
            continue
        ids, labels = label(tokenizer, fmt, chat, raw_ids, offsets)
        if len(ids) > max_seq_len:
            splits[i] = split(tokenizer, fmt, roles[i], contents[i], chat.folded, max_seq_len, chat.text, len(ids) / max(len(chat.text), 1))
            wholes[i] = (chat.text, raw_ids, offsets)
        elif supervised(labels):
            out[i] = Encoded([(ids, labels, False)], system_folded=chat.folded)
        else:
            out[i] = Encoded(rejected="the conversation has no assistant turn to learn from", system_folded=chat.folded)
    for i in elsewhere:
        out[i] = Encoded.of(encode_chat(tokenizer, fmt, roles[i], contents[i], max_seq_len))
    for i, encoded in in_step(tokenizer, fmt, splits, max_seq_len, wholes).items():
        out[i] = encoded
    return out  # type: ignore[return-value]
