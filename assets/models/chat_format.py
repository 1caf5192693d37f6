"""How a base tokenizer's chat template is used for training, learned once per tokenizer.

Published templates are written for inference, not for masking: several append EOS only when no
generation prompt is asked for (Phi-3), move the system prompt into the last user turn (Mistral),
refuse a system role (Gemma 2), drop earlier reasoning blocks (Qwen3) or print today's date
(Llama 3.x). So the conversation is rendered once, whole, and each assistant content is *found* in
that rendering (`render_with_spans`), never assumed to be a difference of two renderings.

Pure: no dagster; jinja2 comes with transformers.
"""

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

# Used only when a base tokenizer ships without a chat template (most base, non-instruct models):
# a neutral plain-text layout whose assistant turns end with EOS.
FALLBACK_CHAT_TEMPLATE = (
    # Separators live inside {{ }} because transformers renders with trim_blocks=True, which eats
    # a newline that follows a {% %} block.
    "{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}{{ '### Assistant:\\n' + m['content'] + eos_token }}"
    "{% if not loop.last %}{{ '\\n\\n' }}{% endif %}"
    "{% else %}{{ '### ' + (m['role'] | capitalize) + ':\\n' + m['content'] + '\\n\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\\n' }}{% endif %}"
)

# Templates that print the date (Llama 3.x: `strftime_now`) get a fixed one, so the same record
# renders to the same tokens on every day (the dataset's data version promises that).
TEMPLATE_DATE = "26 Jul 2024"
# Private-use characters wrapped around assistant contents to find them in a rendering; a content
# that itself holds one is located by search instead.
OPEN, CLOSE = "\ue000", "\ue001"
# Tokens between an answer and its end-of-turn token that may be whitespace (Llama 2: " </s>").
MAX_GAP_TOKENS = 3


class TemplateRefused(ValueError):
    """The template cannot render this conversation usefully; the row is quarantined with this reason."""


@dataclass(frozen=True)
class ChatFormat:
    """What the pipeline learned about one tokenizer's template and special tokens."""

    template: str
    source: Literal["model", "fallback"]  # the tokenizer's own template, or FALLBACK_CHAT_TEMPLATE
    accepts_system: bool  # False (refused, or dropped by the template): folded into the first user turn
    end_of_turn: str | None  # the token an assistant turn ends with (`<|eot_id|>`, `<|im_end|>`, ...)
    end_of_turn_id: int | None
    bos_id: int | None
    adds_bos: bool  # the tokenizer's own convention puts BOS in front of what it encodes
    renders_bos: bool  # the chat template writes BOS first
    special_ids: frozenset[int]
    control_tokens: Any  # compiled regex of the special tokens' texts (None when there are none)

    def stop_token_ids(self, eos_id: int | None) -> list[int]:
        """Token ids generation must stop at: EOS and the template's end-of-turn token."""
        return [i for i in dict.fromkeys([eos_id, self.end_of_turn_id]) if i is not None]

    def describe(self) -> dict[str, Any]:
        """For metadata and the model card: how the template was handled."""
        return {
            "chat_template": self.source,
            "end_of_turn": self.end_of_turn or "-",
            "system_role": "native" if self.accepts_system else "folded into the first user turn",
            "bos": "tokenizer convention, added when the template does not render it" if self.adds_bos else "as rendered",
        }

    @property
    def document_bos(self) -> int | None:
        """BOS to start a plain-text document with, if the model family starts sequences with one
        (its tokenizer adds it, or its template writes it); Qwen, Phi-3 and GPT-NeoX do not."""
        return self.bos_id if self.adds_bos or self.renders_bos else None


def special_token_ids(tokenizer: Any) -> frozenset[int]:
    """Every special token: the named ones and every added token marked special (Llama 3's
    `<|eot_id|>` is only the latter)."""
    added = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return frozenset(added | set(tokenizer.all_special_ids))


def chat_format(tokenizer: Any) -> ChatFormat:
    """Probe the tokenizer once: its template, system support, end-of-turn token, BOS convention."""
    template = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    special = special_token_ids(tokenizer)
    texts = sorted({tokenizer.convert_ids_to_tokens(i) for i in special} - {None, ""}, key=len, reverse=True)
    fmt = ChatFormat(
        template=template or FALLBACK_CHAT_TEMPLATE,
        source="model" if template else "fallback",
        accepts_system=True,
        end_of_turn=None,
        end_of_turn_id=None,
        bos_id=tokenizer.bos_token_id,
        adds_bos=_adds_bos(tokenizer),
        renders_bos=False,  # probed below, with the template
        special_ids=special,
        control_tokens=re.compile("|".join(map(re.escape, texts))) if texts else None,
    )
    probe = [{"role": "system", "content": "Probe rules."}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
    try:
        # Refused (Gemma 2), or silently dropped when the conversation ends with an answer (Mistral v0.3).
        kept = "Probe rules." in render(tokenizer, fmt, probe)
    except TemplateRefused:
        kept = False
    fmt = replace(fmt, accepts_system=kept)
    eot = _probe_end_of_turn(tokenizer, fmt)
    return replace(fmt, end_of_turn=None if eot is None else tokenizer.convert_ids_to_tokens(eot), end_of_turn_id=eot,
                   renders_bos=_renders_bos(tokenizer, fmt))


def render(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]], generation_prompt: bool = False) -> str:
    """The template's text for `messages`; a template error becomes TemplateRefused with its message."""
    import jinja2

    try:
        return tokenizer.apply_chat_template(
            messages, chat_template=fmt.template, tokenize=False,
            add_generation_prompt=generation_prompt, date_string=TEMPLATE_DATE,
        )
    except jinja2.TemplateError as error:
        raise TemplateRefused(f"the chat template refused this conversation: {error}") from error


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """System texts moved into the first user turn (a new user turn if none precedes an answer)."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return [{"role": "user", "content": system}, *rest]


def render_with_spans(tokenizer: Any, fmt: ChatFormat, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """(rendered text, character span of each assistant content in it, in order).

    First with markers around each answer, which shows where the template put it; a template that
    reads the content (splitting off reasoning, trimming) can break the markers, and then each
    answer is searched for, in order, in the plain rendering.
    """
    plain = render(tokenizer, fmt, messages)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    if not any(OPEN in a or CLOSE in a for a in answers):
        marked = [dict(m, content=OPEN + m["content"] + CLOSE) if m["role"] == "assistant" else m for m in messages]
        try:
            spans = marker_spans(render(tokenizer, fmt, marked), len(answers), plain)
        except TemplateRefused:
            spans = None
        if spans is not None:
            return plain, spans
    return plain, searched_spans(plain, answers)


def marker_spans(text: str, expected: int, plain: str) -> list[tuple[int, int]] | None:
    """The answers' spans in `plain`, read off the markers in `text` (its marked rendering); None
    where the markers do not show them (nested, unbalanced, missing, or the content changed)."""
    spans, pieces, length, start = [], [], 0, None
    for piece in re.split(f"([{OPEN}{CLOSE}])", text):
        if piece == OPEN and start is None:
            start = length
        elif piece == CLOSE and start is not None:
            spans.append((start, length))
            start = None
        elif piece in (OPEN, CLOSE):
            return None  # nested or unbalanced: the template moved things around
        else:
            pieces.append(piece)
            length += len(piece)
    if start is not None or len(spans) != expected or "".join(pieces) != plain:
        return None  # the template changed the content (or dropped a turn): search instead
    return spans


def searched_spans(text: str, answers: list[str]) -> list[tuple[int, int]]:
    """Each answer found in `text` in order (as is, stripped, or what follows its reasoning);
    TemplateRefused where one is not rendered verbatim."""
    spans, position = [], 0
    for number, answer in enumerate(answers, 1):
        final = answer.rsplit("</think>", 1)[-1]  # templates that drop reasoning keep what follows it
        for candidate in dict.fromkeys([answer, answer.strip(), final.strip()]):
            found = text.find(candidate, position) if candidate else -1
            if found >= 0:
                spans.append((found, found + len(candidate)))
                position = found + len(candidate)
                break
        else:
            raise TemplateRefused(f"the chat template does not render assistant turn {number} verbatim, so its tokens cannot be found")
    return spans


def _probe_end_of_turn(tokenizer: Any, fmt: ChatFormat) -> int | None:
    """The special token that follows an answer in a rendered conversation, if the template has one."""
    messages = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": "General Kenobi"}]
    try:
        text, spans = render_with_spans(tokenizer, fmt, messages)
    except TemplateRefused:
        return None
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    labels, ended = supervise_spans(ids, encoded["offset_mapping"], text, spans, fmt.special_ids)
    if not ended[0]:
        return None
    return ids[max(i for i, label in enumerate(labels) if label is not None)]


def supervise_spans(
    ids: list[int], offsets: list[tuple[int, int]], text: str, spans: list[tuple[int, int]], special_ids: frozenset[int]
) -> tuple[list[int | None], list[bool]]:
    """Which tokens carry loss: those overlapping an answer's span (a first token that also holds
    the whitespace before the answer, as SentencePiece's "▁word" does, is the model's to produce),
    then the end-of-turn token right after it (only whitespace tokens between). Returns the label
    per token (the id, or None) and, per span, whether an end-of-turn token closed it."""
    labels: list[int | None] = [None] * len(ids)
    ended = []
    t = 0
    for start, end in spans:
        while t < len(ids) and offsets[t][1] <= start:
            t += 1
        while t < len(ids) and offsets[t][0] < end:
            labels[t] = ids[t]
            t += 1
        gap = t
        while gap < len(ids) and gap - t < MAX_GAP_TOKENS and ids[gap] not in special_ids and text[offsets[gap][0]:offsets[gap][1]].isspace():
            gap += 1
        closed = gap < len(ids) and ids[gap] in special_ids
        if closed:
            for j in range(t, gap + 1):
                labels[j] = ids[j]
            t = gap + 1
        ended.append(closed)
    return labels, ended


def _renders_bos(tokenizer: Any, fmt: ChatFormat) -> bool:
    if tokenizer.bos_token is None:
        return False
    try:
        return render(tokenizer, fmt, [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]).startswith(tokenizer.bos_token)
    except TemplateRefused:
        return False


def _adds_bos(tokenizer: Any) -> bool:
    if tokenizer.bos_token_id is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(with_special) and with_special[0] == tokenizer.bos_token_id


