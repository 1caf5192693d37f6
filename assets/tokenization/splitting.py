"""Long conversations split at turn boundaries, for the batched path (batched.py).

A conversation whose encoding is longer than max_seq_len becomes several examples by the
reference's greedy (formatting._split_at_turns: as many whole exchanges as fit, an exchange too
long alone cut at max_seq_len), with the same result. It lives apart from batched.py because it is
its own algorithm: the greedy decides on token counts alone (no marked render), many rows' greedies
run in step so each step encodes in one batch, and only the examples it keeps are labelled, at the
end.

The greedy asks for the token counts of growing candidate parts (the system prompt and exchanges
first..b). Each is rendered, but encoding every one of them made splitting quadratic in the
exchanges: a candidate whose rendering is a prefix of an encoded reference, cut at an added
token's edge, takes its tokens from the reference instead (prefixes.py: exact by how the tokenizer
cuts text at added tokens). The references are the whole conversation (encoded already to see it
was too long) and, where the candidates of a step start elsewhere, the longest of them (or, after
a cut, a part reaching as far as the next step will ask), encoded once with offsets; the examples
kept are then labelled from those tokens. A candidate that is not such a prefix is encoded as
before (encode_batch_fast), and a row whose fresh reference gave no prefix stops asking for one.

Pure: no dagster.
"""

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from assets.models.chat_format import ChatFormat, TemplateRefused, fold_system, searched_spans
from assets.tokenization.encoding import Chat, Encoded, arrays, encodings, fast_backend, label, render_spans, renderer, supervised
from assets.tokenization.formatting import exchanges_of
from assets.tokenization.prefixes import Reference, edge_tokens

SPECULATE = 8  # most candidate parts of a long conversation rendered in one batch when it is split


@dataclass(frozen=True)
class Part:
    """A candidate part whose tokens came from a reference: its plain rendering, ids and offsets
    (no BOS or EOS added), ready to be labelled if the greedy keeps it."""

    text: str
    ids: np.ndarray
    offsets: np.ndarray


Lengths = list[tuple[int | None, Part | None]]  # per candidate: its length (None: the fast path cannot render it), its tokens


def split(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str], fold: bool, max_seq_len: int,
          whole_text: str, tokens_per_char: float) -> Generator[tuple, list, Encoded]:
    """encode_chat's split at turn boundaries (formatting._split_at_turns, the same greedy), as a
    generator: it yields what it needs next, ("lengths", conversations, reference) or ("examples",
    conversations, parts), is sent their (length, Part) or (ids, labels) (None where the fast path
    cannot render one), and returns the row's Encoded. `in_step` runs many rows' greedies together,
    so each step renders and encodes the parts of every long row in one batch.

    The greedy decides on lengths alone (`_part_lengths`: no marked render), from where the current
    example starts asking for as many growing candidates as likely fit (at most SPECULATE) and one
    more; only the examples it keeps are labelled, all at the end. `reference` is a longer part to
    encode once for the candidates to take their tokens from (None: the longest candidate)."""
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    system, exchanges = exchanges_of(messages)

    def conversation(a: int, b: int) -> list[dict[str, str]]:
        final = system + [m for e in exchanges[a:b] for m in e]
        return fold_system(final) if fold else final

    def lengths(ranges: list[tuple[int, int]], reference: tuple[int, int] | None = None) -> Generator[tuple, list, Lengths]:
        conversations = [conversation(a, b) for a, b in ranges]
        results = yield "lengths", conversations, None if reference is None else conversation(*reference)
        for i, (value, _) in enumerate(results):
            if value is None:  # the template refused or moved something: the reference renders it (or
                # raises) only when it is the next part the greedy takes, as the per-row code would.
                return [(len(_reference_part(tokenizer, fmt, conversations[0])[0]), None)] if i == 0 else results[:i]
        return results

    # Likely tokens of each exchange, from the whole conversation's encoding: its characters (with
    # the template's share per message) times the conversation's tokens per character. Only a
    # guess of how many candidates to render at once; every decision is taken on real encodings.
    per_message = max(0.0, (len(whole_text) - sum(len(m["content"]) for m in messages)) / max(len(messages), 1))
    likely = np.array([tokens_per_char * sum(len(m["content"]) + per_message for m in e) for e in exchanges])
    head = tokens_per_char * sum(len(m["content"]) + per_message for m in system)

    def last_candidate(first: int, j: int) -> int:
        """The end of the last candidate a step asks for when exchanges[first:j] are held."""
        sizes = head + np.cumsum(likely[first:])[j - first:]  # candidates (first, j+1), (first, j+2), ...
        fits = int(np.count_nonzero(sizes <= max_seq_len))
        return min(len(exchanges), j + 1 + min(fits, SPECULATE))

    # The examples in order, as exchange ranges (a, b, cut) with their tokens where a reference gave
    # them; fitted: exchanges[first:j] fit in one, `held` their tokens.
    pieces: list[tuple[int, int, bool, Part | None]] = []
    first, fitted, held, j = 0, False, None, 0
    try:
        while j < len(exchanges):
            if first == j:  # nothing held yet: the candidate is the exchange alone
                found = yield from lengths([(j, j + 1)], (j, last_candidate(j, j + 1)) if j + 1 < len(exchanges) else None)
            else:
                found = yield from lengths([(first, b) for b in range(j + 1, last_candidate(first, j) + 1)])
            for length, part in found:
                if length <= max_seq_len:
                    fitted, held, j = True, part, j + 1
                    continue
                if fitted:
                    pieces.append((first, j, False, held))
                if first == j:
                    single, alone = length, part
                else:  # the exchange alone; encoded as far as the next step will ask, should it fit
                    reference = (j, last_candidate(j, j + 1)) if j + 1 < len(exchanges) else None
                    (single, alone), = yield from lengths([(j, j + 1)], reference)
                if single <= max_seq_len:
                    first, fitted, held, j = j, True, alone, j + 1
                else:  # one exchange too long alone: cut at max_seq_len
                    pieces.append((j, j + 1, True, alone))
                    first, fitted, held, j = j + 1, False, None, j + 1
                break  # the current example changed: look ahead again from it
        if fitted:
            pieces.append((first, j, False, held))
        conversations = [conversation(a, b) for a, b, _, _ in pieces]
        encoded = (yield "examples", conversations, [part for *_, part in pieces]) if pieces else []
        encoded = [_reference_part(tokenizer, fmt, c) if e is None else e for c, e in zip(conversations, encoded)]
    except TemplateRefused as error:
        return Encoded(rejected=str(error), system_folded=fold)
    examples: list[tuple[np.ndarray, np.ndarray, bool]] = []
    dropped = 0
    for (_, _, cut, _), (ids, labels) in zip(pieces, encoded):
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


def in_step(tokenizer: Any, fmt: ChatFormat, greedies: dict[int, Generator[tuple, list, Encoded]], max_seq_len: int,
            wholes: dict[int, tuple[str, np.ndarray, np.ndarray]] | None = None) -> dict[int, Encoded]:
    """Run the rows' split greedies side by side: every step, all the parts they ask for in one batch
    of each kind (lengths, examples). `wholes`: each row's whole conversation as rendered and
    encoded (text, ids, offsets; `arrays`), where it has one: the first reference."""
    out: dict[int, Encoded] = {}
    prefixes = Prefixes(tokenizer, wholes or {})
    asks = {}
    for i, greedy in greedies.items():
        try:
            asks[i] = next(greedy)
        except StopIteration as done:
            out[i] = done.value
    while asks:
        answers: dict[int, list] = {}
        wanted = {i: (conversations, reference) for i, (kind, conversations, reference) in asks.items() if kind == "lengths"}
        answers |= _part_lengths(tokenizer, fmt, wanted, max_seq_len, prefixes)
        flat = [(i, conversation, part) for i, (kind, conversations, parts) in asks.items() if kind == "examples"
                for conversation, part in zip(conversations, parts)]
        for (i, _, _), result in zip(flat, _encode_parts(tokenizer, fmt, [(c, p) for _, c, p in flat])):
            answers.setdefault(i, []).append(result)
        asks = {}
        for i, answer in answers.items():
            try:
                asks[i] = greedies[i].send(answer)
            except StopIteration as done:
                out[i] = done.value
                prefixes.done(i)
    return out


class Prefixes:
    """Each split row's whole encoding and latest reference encoding, and the rows whose template
    renders parts that are no prefix of one (no more references are encoded for them)."""

    def __init__(self, tokenizer: Any, wholes: dict[int, tuple[str, np.ndarray, np.ndarray]]) -> None:
        self.edges = edge_tokens(tokenizer)
        edges = self.edges
        self.wholes = {} if edges is None else {i: Reference(*whole, edges) for i, whole in wholes.items()}
        self.references: dict[int, Reference] = {}
        self.unhelpful: set[int] = set()

    def tokens(self, i: int, text: str) -> tuple[np.ndarray, np.ndarray] | None:
        for reference in (self.wholes.get(i), self.references.get(i)):
            found = None if reference is None else reference.tokens(text)
            if found is not None:
                return found
        return None

    def done(self, i: int) -> None:
        self.wholes.pop(i, None)
        self.references.pop(i, None)


def _part_lengths(tokenizer: Any, fmt: ChatFormat, asks: dict[int, tuple[list[list[dict[str, str]]], list[dict[str, str]] | None]],
                  max_seq_len: int, prefixes: Prefixes) -> dict[int, Lengths]:
    """What len(_encode_parts(...)[n][0]) says about fitting in max_seq_len, for less, for each row's
    candidates: the plain rendering's token count (taken from the row's reference where the
    rendering is a prefix of it, else from encode_batch_fast, no offsets) plus the BOS the
    tokenizer's convention adds. Labels are not needed to decide, except where an added EOS would
    decide (the count is exactly max_seq_len), and the EOS depends on whether an end-of-turn token
    closed the last answer: those, and renderings whose answers cannot be found by search (markers
    would decide), take _encode_parts. None where the fast path cannot render (as _encode_parts)."""
    render = renderer(tokenizer, fmt)
    out: dict[int, Lengths] = {i: [(None, None)] * len(conversations) for i, (conversations, _) in asks.items()}
    texts: dict[tuple[int, int], str] = {}  # (row, candidate) -> plain rendering, for those counted below
    exact: list[tuple[int, int]] = []
    for i, (conversations, _) in asks.items():
        for n, messages in enumerate(conversations):
            text = render(messages)
            if text is None:
                continue
            try:
                searched_spans(text, [m["content"] for m in messages if m["role"] == "assistant"])
            except TemplateRefused:
                exact.append((i, n))
                continue
            texts[i, n] = text
    counted: dict[tuple[int, int], tuple[int, int | None, Part | None]] = {}  # -> (tokens, first id, part)

    def from_references(keys: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Count what the rows' references give; the keys they do not."""
        left = []
        for key in keys:
            found = prefixes.tokens(key[0], texts[key])
            if found is None:
                left.append(key)
                continue
            ids, offsets = found
            counted[key] = (len(ids), int(ids[0]) if len(ids) else None, Part(texts[key], ids, offsets))
        return left

    left = from_references(list(texts))
    if prefixes.edges is not None:
        fresh: dict[int, str] = {}  # a new reference for each row with candidates left
        for i, n in left:
            if i in prefixes.unhelpful or i in fresh:
                continue
            reference = asks[i][1]
            text = render(reference) if reference is not None else None
            fresh[i] = text if text is not None else max((t for (r, _), t in texts.items() if r == i), key=len)
        backend = fast_backend(tokenizer)
        for i, encoding in encodings(backend, list(fresh.values()), list(fresh), tokenizer.split_special_tokens):
            prefixes.references[i] = Reference(fresh[i], *arrays(encoding), prefixes.edges)
        before = [key for key in left if key[0] in fresh]
        left = from_references(left)
        still = set(left)
        for i in fresh:
            others = [key for key in before if key[0] == i and texts[key] != fresh[i]]
            if others and all(key in still for key in others):
                prefixes.unhelpful.add(i)  # its template renders parts that are no prefixes of longer ones
    for key, encoding in encodings(fast_backend(tokenizer), [texts[key] for key in left], left, tokenizer.split_special_tokens, offsets=False):
        ids = encoding.ids
        counted[key] = (len(ids), ids[0] if ids else None, None)
    for (i, n), (count, first_id, part) in counted.items():
        length = count + (fmt.adds_bos and first_id != fmt.bos_id)
        messages = asks[i][0][n]
        eos_possible = tokenizer.eos_token_id is not None and messages[-1]["role"] == "assistant"
        if length == max_seq_len and eos_possible:
            exact.append((i, n))
        else:
            out[i][n] = (length, part)
    for (i, n), result in zip(exact, _encode_parts(tokenizer, fmt, [(asks[i][0][n], None) for i, n in exact])):
        out[i][n] = (None, None) if result is None else (len(result[0]), None)
    return out


def _encode_parts(tokenizer: Any, fmt: ChatFormat, parts: list[tuple[list[dict[str, str]], Part | None]]) -> list[Any]:
    """render_conversation(...).example of each conversation as (ids, labels) arrays, or None where
    the fast path cannot render it (the reference then decides); labelled from the Part's tokens
    where there is one (only the marked rendering is made), else rendered and encoded."""
    chats = {i: Chat(messages, False, text=part.text if part is not None else "") for i, (messages, part) in enumerate(parts)}
    render_spans(tokenizer, fmt, chats, check_system=False)
    ready = [i for i in chats if chats[i].spans is not None]
    out: list[Any] = [None] * len(parts)
    encode = []
    for i in ready:
        part = parts[i][1]
        if part is None:
            encode.append(i)
        else:
            out[i] = label(tokenizer, fmt, chats[i], part.ids, part.offsets)
    for i, encoding in encodings(fast_backend(tokenizer), [chats[i].text for i in encode], encode, tokenizer.split_special_tokens):
        out[i] = label(tokenizer, fmt, chats[i], *arrays(encoding))
    return out


def _reference_part(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[np.ndarray, np.ndarray]:
    from assets.tokenization.formatting import render_conversation

    example = render_conversation(tokenizer, fmt, messages).example
    return np.asarray(example.input_ids, dtype=np.int64), np.asarray(example.labels, dtype=np.int64)
