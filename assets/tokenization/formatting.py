"""Turn one clean record into token ids and labels.

Plain text is supervised everywhere. Chat and instruction records are rendered with the base
tokenizer's chat template and only assistant tokens carry loss (labels -100 elsewhere), so the
model learns to answer rather than to imitate users. Every example ends with the end-of-sequence
token, supervised, so the model learns to stop.
"""

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100  # the label value PyTorch's cross-entropy skips

# Used only when a base tokenizer ships without a chat template (most base, non-instruct models):
# a neutral plain-text layout, prefix-consistent like the built-in template.
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


@dataclass(frozen=True)
class Example:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False  # tokens past max_seq_len were cut off (chat only; text is windowed)

    @property
    def supervised_tokens(self) -> int:
        # The model predicts token t+1 from tokens <= t, so the first label never counts.
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


def render_segments(tokenizer: Any, roles: list[str], contents: list[str]) -> list[tuple[str, bool]]:
    """Split a rendered conversation into (text, supervised) pieces, for any chat template.

    Rendering messages[:i] with a generation prompt must be a prefix of rendering messages[:i+1]
    when message i is the assistant's; the difference is exactly what the assistant said (plus
    the template's end-of-turn marker). Templates that break this property are refused.
    """
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    template = tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE

    def render(upto: int, prompt: bool) -> str:
        return tokenizer.apply_chat_template(
            messages[:upto], chat_template=template, tokenize=False, add_generation_prompt=prompt
        )

    segments: list[tuple[str, bool]] = []
    done = ""
    for index, role in enumerate(roles):
        if role != "assistant":
            continue
        prompt, full = render(index, True), render(index + 1, False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise ValueError(
                "the chat template is not prefix-consistent (rendering a conversation up to an "
                "assistant turn is not a prefix of rendering it with that turn), so prompt and "
                "answer tokens cannot be separated; use a template that renders turns in order"
            )
        segments += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    rest = render(len(messages), False)[len(done):]
    if rest:
        segments.append((rest, False))
    return [(text, supervised) for text, supervised in segments if text]


def encode_chat(tokenizer: Any, roles: list[str], contents: list[str], max_seq_len: int) -> Example:
    """Token ids with labels only on assistant turns; ends with EOS; truncated at max_seq_len."""
    ids: list[int] = []
    labels: list[int] = []
    for text, supervised in render_segments(tokenizer, roles, contents):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if supervised else [IGNORE_INDEX] * len(piece)
    eos = tokenizer.eos_token_id
    if not ids or ids[-1] != eos:
        ids.append(eos)
        labels.append(eos)
    truncated = len(ids) > max_seq_len
    return Example(ids[:max_seq_len], labels[:max_seq_len], truncated)


def encode_text(tokenizer: Any, text: str, max_seq_len: int) -> list[Example]:
    """BOS + text + EOS, all supervised, cut into windows of at most max_seq_len tokens.

    Nothing is thrown away: a long document becomes several examples of near-equal length
    (never a stub of one token, which would carry no supervised prediction).
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.bos_token_id is not None:
        ids = [tokenizer.bos_token_id] + ids
    ids.append(tokenizer.eos_token_id)
    windows = -(-len(ids) // max_seq_len)  # ceiling division
    bounds = [round(i * len(ids) / windows) for i in range(windows + 1)]
    return [Example(ids[a:b], ids[a:b]) for a, b in zip(bounds, bounds[1:])]


def encode_record(
    tokenizer: Any, kind: str, roles: list[str], contents: list[str], max_seq_len: int
) -> list[Example]:
    if kind == "text":
        return encode_text(tokenizer, "\n\n".join(contents), max_seq_len)
    return [encode_chat(tokenizer, roles, contents, max_seq_len)]


def round_trip_mismatch(tokenizer: Any, roles: list[str], contents: list[str], max_seq_len: int) -> str | None:
    """Why a chat example does not decode back to its rendered text ending in EOS, or None.

    Catches tokenizers whose piecewise encoding changes the text (merges across the prompt/answer
    boundary, added or dropped spaces) and templates that do not end a conversation with EOS.
    """
    example = encode_chat(tokenizer, roles, contents, max_seq_len)
    if example.truncated:
        return None  # cut on purpose; the truncation check reports it
    rendered = "".join(text for text, _ in render_segments(tokenizer, roles, contents))
    if not rendered.endswith(tokenizer.eos_token):
        rendered += tokenizer.eos_token
    decoded = tokenizer.decode(example.input_ids, skip_special_tokens=False)
    if example.input_ids[-1] != tokenizer.eos_token_id:
        return "does not end with the end-of-sequence token"
    if decoded != rendered:
        at = next((i for i, (a, b) in enumerate(zip(decoded, rendered)) if a != b), min(len(decoded), len(rendered)))
        return f"decodes differently from its rendered text at character {at}: {decoded[at:at + 30]!r} vs {rendered[at:at + 30]!r}"
    return None
