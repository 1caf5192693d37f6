"""Long conversations split at turn boundaries, for the batched path (batched.py).

A conversation whose encoding is longer than max_seq_len becomes several examples by the
reference's greedy (formatting._split_at_turns: as many whole exchanges as fit, an exchange too
long alone cut at max_seq_len), with the same result. It lives apart from batched.py because it is
its own algorithm: the greedy decides on token counts alone (encode_batch_fast, no offsets, no
marked render), many rows' greedies run in step so each step encodes in one batch, and only the
examples it keeps are labelled, at the end.

Pure: no dagster.
"""

from collections.abc import Generator
from typing import Any

import numpy as np

from assets.models.chat_format import ChatFormat, TemplateRefused, fold_system, searched_spans
from assets.tokenization.encoding import Chat, Encoded, encodings, fast_backend, label, render_spans, renderer, supervised
from assets.tokenization.formatting import exchanges_of

SPECULATE = 8  # most candidate parts of a long conversation rendered in one batch when it is split


def split(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str], fold: bool, max_seq_len: int,
           whole_text: str, tokens_per_char: float) -> Generator[tuple[str, list], list, Encoded]:
    """encode_chat's split at turn boundaries (formatting._split_at_turns, the same greedy), as a
    generator: it yields what it needs next, ("lengths", conversations) or ("examples",
    conversations), is sent their lengths or (ids, labels) (None where the fast path cannot render
    one), and returns the row's Encoded. `in_step` runs many rows' greedies together, so each step
    renders and encodes the parts of every long row in one batch.

    The greedy decides on lengths alone (`_part_lengths`: no offsets, no marked render), from where
    the current example starts asking for as many growing candidates as likely fit (at most
    SPECULATE) and one more; only the examples it keeps are labelled, all at the end."""
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    system, exchanges = exchanges_of(messages)

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


def in_step(tokenizer: Any, fmt: ChatFormat, greedies: dict[int, Generator[tuple[str, list], list, Encoded]],
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
    render = renderer(tokenizer, fmt)
    out: list[int | None] = [None] * len(conversations)
    texts, ready, exact = [], [], []
    for i, messages in enumerate(conversations):
        text = render(messages)
        if text is None:
            continue
        try:
            searched_spans(text, [m["content"] for m in messages if m["role"] == "assistant"])
        except TemplateRefused:
            exact.append(i)
            continue
        texts.append(text)
        ready.append(i)
    for i, encoding in encodings(fast_backend(tokenizer), texts, ready, tokenizer.split_special_tokens, offsets=False):
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
    chats = {i: Chat(messages, False) for i, messages in enumerate(conversations)}
    render_spans(tokenizer, fmt, chats, check_system=False)
    ready = [i for i in chats if chats[i].spans is not None]
    out: list[Any] = [None] * len(conversations)
    for i, encoding in encodings(fast_backend(tokenizer), [chats[i].text for i in ready], ready, tokenizer.split_special_tokens):
        out[i] = label(tokenizer, fmt, chats[i], encoding)
    return out


def _reference_part(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    from assets.tokenization.formatting import render_conversation

    example = render_conversation(tokenizer, fmt, messages).example
    return np.asarray(example.input_ids, dtype=np.int64), np.asarray(example.labels, dtype=np.int64)
