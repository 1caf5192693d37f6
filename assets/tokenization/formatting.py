"""Turn one clean record into training examples (token ids and labels).

Plain text is supervised everywhere. Chat and instruction records are rendered with the base
tokenizer's chat template (chat_format.py) and only the assistants' contents plus the model's own
end-of-turn token carry loss (labels -100 elsewhere), so the model learns to answer, and to stop,
rather than to imitate users. A conversation longer than `max_seq_len` is split at turn boundaries
into several examples that each keep the system prompt; only a single exchange that is itself too
long is cut, and a row left with nothing to learn says why (it is quarantined, not dropped).
"""

from dataclasses import dataclass, field
from typing import Any

from assets.models.batches import IGNORE_INDEX, count_supervised
from assets.models.chat_format import ChatFormat, TemplateRefused, fold_system, render_with_spans, supervise_spans


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False  # one exchange was longer than max_seq_len and was cut there

    @property
    def supervised_tokens(self) -> int:
        return count_supervised(self.labels)


@dataclass(frozen=True)
class EncodedRow:
    """What one record became: its examples, or why it yields none."""

    examples: list[Example] = field(default_factory=list)
    rejected: str | None = None
    system_folded: bool = False
    exchanges_dropped: int = 0  # exchanges whose answer started beyond max_seq_len


@dataclass(frozen=True)
class Rendered:
    """A conversation as training sees it: the text, its tokens and labels."""

    text: str  # what the template rendered (without a BOS the tokenizer convention adds)
    example: Example
    spans: list[tuple[int, int]]  # character span of each assistant content in `text`
    bos_added: bool
    eos_added: bool


def encode_record(tokenizer: Any, fmt: ChatFormat, kind: str, roles: list[str], contents: list[str], max_seq_len: int) -> EncodedRow:
    if kind == "text":
        return EncodedRow(encode_text(tokenizer, "\n\n".join(contents), max_seq_len, fmt.document_bos))
    return encode_chat(tokenizer, fmt, roles, contents, max_seq_len)


def encode_chat(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str], max_seq_len: int) -> EncodedRow:
    """One or more examples from a conversation, or the reason it has none."""
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    if fmt.control_tokens is not None:
        for number, message in enumerate(messages, 1):
            if hit := fmt.control_tokens.search(message["content"]):
                # It would be encoded as the real control token and fake a turn boundary.
                return EncodedRow(rejected=f"turn {number} ({message['role']}) contains the tokenizer's control token {hit.group()!r}")
    try:
        whole, folded = render_row(tokenizer, fmt, messages)
    except TemplateRefused as error:
        return EncodedRow(rejected=str(error), system_folded="system" in roles and not fmt.accepts_system)
    if len(whole.example.input_ids) <= max_seq_len:
        examples, dropped = [whole.example], 0
    else:
        try:
            examples, dropped = _split_at_turns(tokenizer, fmt, messages, max_seq_len, folded)
        except TemplateRefused as error:
            return EncodedRow(rejected=str(error), system_folded=folded)
    examples = [e for e in examples if e.supervised_tokens]
    if not examples:
        reason = (f"no assistant turn starts within max_seq_len ({max_seq_len} tokens)" if dropped
                  else "the conversation has no assistant turn to learn from")
        return EncodedRow(rejected=reason, system_folded=folded, exchanges_dropped=dropped)
    return EncodedRow(examples, system_folded=folded, exchanges_dropped=dropped)


def render_row(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[Rendered, bool]:
    """The whole conversation rendered, and whether its system prompt had to be folded into the
    first user turn: the template refuses a system role, or drops it for this shape of conversation."""
    folded = any(m["role"] == "system" for m in messages) and not fmt.accepts_system
    whole = render_conversation(tokenizer, fmt, fold_system(messages) if folded else messages)
    if not folded and any(m["content"] not in whole.text for m in messages if m["role"] == "system"):
        folded = True
        whole = render_conversation(tokenizer, fmt, fold_system(messages))
    return whole, folded


def render_conversation(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> Rendered:
    """Render once, tokenize once (offsets), and label the answers and their end-of-turn tokens."""
    text, spans = render_with_spans(tokenizer, fmt, messages)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    marks, ended = supervise_spans(ids, encoded["offset_mapping"], text, spans, fmt.special_ids)
    labels = [IGNORE_INDEX if m is None else m for m in marks]
    # A template without an end-of-turn marker still has to teach the model to stop.
    eos_added = bool(spans) and messages[-1]["role"] == "assistant" and not ended[-1] and tokenizer.eos_token_id is not None
    if eos_added:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    # The template rendered BOS already (most do), or the tokenizer's convention wants one in front.
    bos_added = fmt.adds_bos and (not ids or ids[0] != fmt.bos_id)
    if bos_added:
        ids.insert(0, fmt.bos_id)
        labels.insert(0, IGNORE_INDEX)
    return Rendered(text, Example(ids, labels), spans, bos_added, eos_added)


def exchanges_of(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[list[dict[str, str]]]]:
    """(system messages, exchanges): the other turns grouped up to and including each answer; a
    trailing question without an answer is left out (it teaches nothing)."""
    system = [m for m in messages if m["role"] == "system"]
    exchanges: list[list[dict[str, str]]] = [[]]
    for message in (m for m in messages if m["role"] != "system"):
        exchanges[-1].append(message)
        if message["role"] == "assistant":
            exchanges.append([])
    return system, [e for e in exchanges if any(m["role"] == "assistant" for m in e)]


def _split_at_turns(
    tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]], max_seq_len: int, fold: bool
) -> tuple[list[Example], int]:
    """Greedy: as many whole exchanges (turns up to and including an answer) per example as fit,
    each example starting with the system prompt. An exchange too long alone is cut at
    max_seq_len (marked truncated); one whose answer starts beyond it is dropped (counted)."""
    system, exchanges = exchanges_of(messages)

    def encode(part: list[dict[str, str]]) -> Example:
        return render_conversation(tokenizer, fmt, fold_system(system + part) if fold else system + part).example

    examples: list[Example] = []
    dropped = 0
    current: list[dict[str, str]] = []
    fitted: Example | None = None
    for exchange in exchanges:
        candidate = encode(current + exchange)
        if len(candidate.input_ids) <= max_seq_len:
            current, fitted = current + exchange, candidate
            continue
        if fitted is not None:
            examples.append(fitted)
        alone = encode(exchange)
        if len(alone.input_ids) <= max_seq_len:
            current, fitted = exchange, alone
            continue
        cut = Example(alone.input_ids[:max_seq_len], alone.labels[:max_seq_len], truncated=True)
        if cut.supervised_tokens:
            examples.append(cut)
        else:
            dropped += 1
        current, fitted = [], None
    if fitted is not None:
        examples.append(fitted)
    return examples, dropped


def encode_text(tokenizer: Any, text: str, max_seq_len: int, bos_id: int | None) -> list[Example]:
    """[BOS] + text + EOS, all supervised, cut into windows of at most max_seq_len tokens (BOS where
    the model family starts sequences with one: ChatFormat.document_bos).

    Nothing is thrown away: a long document becomes several examples of near-equal length
    (never a stub of one token, which would carry no supervised prediction). Control-token text
    inside a document ("<|endoftext|>" in a web page) is encoded as the plain text it is.
    """
    ids = tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    if bos_id is not None:
        ids = [bos_id] + ids
    ids.append(tokenizer.eos_token_id)
    windows = -(-len(ids) // max_seq_len)  # ceiling division
    bounds = [round(i * len(ids) / windows) for i in range(windows + 1)]
    return [Example(ids[a:b], ids[a:b]) for a, b in zip(bounds, bounds[1:])]


def round_trip_mismatch(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str], max_seq_len: int) -> str | None:
    """Why a chat example's supervised tokens are not exactly its answers, each with the
    end-of-turn token after it, or None. Catches tokens that merge across the prompt/answer
    boundary, tokenizers that change the answers' text, and answers the model is never taught to end."""
    return inspect_round_trip(tokenizer, fmt, roles, contents, max_seq_len)[0]


def text_difference(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str]) -> str | None:
    """Where decoding a conversation's tokens does not give back its rendered text, or None. This is
    the tokenizer's own normalisation (Phi-3's special tokens swallow the newline after them),
    identical when the model is served, so it is reported, not refused."""
    return inspect_round_trip(tokenizer, fmt, roles, contents, max_seq_len=None)[1]


def inspect_round_trip(tokenizer: Any, fmt: ChatFormat, roles: list[str], contents: list[str],
                       max_seq_len: int | None) -> tuple[str | None, str | None]:
    """(round_trip_mismatch, text_difference) of one conversation, rendered once. A conversation the
    template refuses has neither (it is quarantined with its reason; not a tokenizer fault)."""
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    try:
        rendered, _ = render_row(tokenizer, fmt, messages)
    except TemplateRefused:
        return None, None
    return _mask_mismatch(tokenizer, fmt, rendered, messages[-1]["role"], max_seq_len), _text_change(tokenizer, rendered)


def _mask_mismatch(tokenizer: Any, fmt: ChatFormat, rendered: Rendered, last_role: str, max_seq_len: int | None) -> str | None:
    example = rendered.example
    if max_seq_len is None or len(example.input_ids) > max_seq_len:
        return None  # split or cut on purpose; the truncation check reports it
    runs = supervised_runs(example.input_ids, example.labels)
    answers = [rendered.text[a:b] for a, b in rendered.spans]
    if len(runs) != len(answers):
        return f"{len(runs)} supervised runs for {len(answers)} assistant turns"
    for number, (run, answer) in enumerate(zip(runs, answers), 1):
        text = _decode(tokenizer, run)
        before, found, after = text.partition(answer)
        # Whitespace before the answer may ride on its first token ("▁word"); after it only the
        # end-of-turn token (and whitespace) may follow.
        if not found or before.strip() or after.strip() not in ("", _decode(tokenizer, run[-1:]).strip()):
            return f"assistant turn {number}: supervised tokens decode to {text[:40]!r}, not the answer {answer[:40]!r} and its end-of-turn token"
    if last_role == "assistant" and runs[-1][-1] not in fmt.special_ids | {tokenizer.eos_token_id}:
        return "the last answer does not end with a supervised end-of-turn token"
    return None


def _text_change(tokenizer: Any, rendered: Rendered) -> str | None:
    ids = rendered.example.input_ids[1:] if rendered.bos_added else rendered.example.input_ids
    decoded = _decode(tokenizer, ids[:-1] if rendered.eos_added else ids)
    if decoded == rendered.text:
        return None
    at = next((i for i, (a, b) in enumerate(zip(decoded, rendered.text)) if a != b), min(len(decoded), len(rendered.text)))
    return f"decodes differently from its rendered text at character {at}: {decoded[at:at + 30]!r} vs {rendered.text[at:at + 30]!r}"


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def supervised_runs(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """Contiguous runs of input ids whose label is not IGNORE_INDEX: one per answer (with its end of turn)."""
    runs, current = [], []
    for token, label in zip(input_ids, labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs, current = runs + [current], []
    return runs + ([current] if current else [])
