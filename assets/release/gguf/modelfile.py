"""An Ollama `Modelfile` for a GGUF file: FROM, a TEMPLATE derived from the chat template, stop tokens.

Ollama renders prompts with Go templates, not Jinja; it recognises a few well-known Jinja templates
embedded in a GGUF and falls back to the bare prompt for any other, such as the built-in model's.
So the Jinja template is rendered on sentinel conversations and cut into per-role pieces (head,
content, tail) plus the generation prompt; the Go template is built from those pieces, and only if
re-assembling them reproduces the Jinja rendering of test conversations exactly. Otherwise TEMPLATE
is omitted and the reason is returned (Ollama then uses the template embedded in the GGUF as it can).

Pure: no dagster; the tokenizer is a transformers tokenizer with a chat template.
"""

from dataclasses import dataclass
from typing import Any

from assets.models.chat_format import ChatFormat, TemplateRefused, render

# Private-use sentinels stand for message contents in the probe renderings.
S, U1, A1, U2 = "\ue010", "\ue011", "\ue012", "\ue013"
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Pieces:
    """The Jinja template's text around each role's content, as Ollama's template will write it."""

    preamble: str  # written once, before the first message (BOS when the template writes it)
    heads: dict[str, str]
    tails: dict[str, str]
    generation_prompt: str

    def assemble(self, messages: list[dict[str, str]], generation_prompt: bool) -> str:
        """The text the Go template below renders for `messages` (its Python twin, for the check)."""
        out = [self.preamble]
        for i, message in enumerate(messages):
            last = i == len(messages) - 1
            out.append(self.heads[message["role"]] + message["content"])
            if not (last and message["role"] == "assistant"):
                out.append(self.tails[message["role"]])
        if generation_prompt and messages[-1]["role"] != "assistant":
            out.append(self.generation_prompt)
        return "".join(out)

    def go_template(self) -> str:
        """Ollama's TEMPLATE: one line of actions, no `{{-` trimming, so literal newlines survive."""
        branches = "".join(
            f'{{{{ {"if" if i == 0 else "else if"} eq .Role "{role}" }}}}{self.heads[role]}{{{{ .Content }}}}'
            + (f"{{{{ if not $last }}}}{self.tails[role]}{{{{ end }}}}" if role == "assistant" else self.tails[role])
            for i, role in enumerate(ROLES) if role in self.heads
        )
        return (
            f"{self.preamble}{{{{ range $i, $_ := .Messages }}}}{{{{ $last := eq (len (slice $.Messages $i)) 1 }}}}"
            f"{branches}{{{{ end }}}}"
            f'{{{{ if and $last (ne .Role "assistant") }}}}{self.generation_prompt}{{{{ end }}}}{{{{ end }}}}'
        )


def derive_pieces(tokenizer: Any, fmt: ChatFormat) -> tuple[Pieces | None, str]:
    """(pieces, "") when the template splits cleanly into per-role pieces, else (None, why not)."""
    try:
        with_system = render(tokenizer, fmt, _conversation(True), generation_prompt=True) if fmt.accepts_system else None
        plain = render(tokenizer, fmt, _conversation(False), generation_prompt=True)
        one_user = render(tokenizer, fmt, [{"role": "user", "content": U1}])
    except TemplateRefused as error:
        return None, str(error)
    head_user, tail_user = _split(one_user, U1)
    t0, t1, t2, t3 = _cut(plain, [U1, A1, U2])
    if t0 != head_user or not t1.startswith(tail_user) or not t3.startswith(tail_user):
        return None, "the user turn renders differently in different positions"
    inner_user = _common_suffix(head_user, t2)
    preamble = head_user[: len(head_user) - len(inner_user)]
    heads = {"user": inner_user, "assistant": t1[len(tail_user):]}
    tails = {"user": tail_user, "assistant": t2[: len(t2) - len(inner_user)]}
    if with_system is not None:
        s0, s1, *_ = _cut(with_system, [S, U1, A1, U2])
        if not s0.startswith(preamble) or not s1.endswith(inner_user):
            return None, "the system turn renders differently from the other turns"
        heads["system"], tails["system"] = s0[len(preamble):], s1[: len(s1) - len(inner_user)]
    pieces = Pieces(preamble, heads, tails, t3[len(tail_user):])
    for messages in ([*_conversation(fmt.accepts_system)], [{"role": "user", "content": U1}]):
        if pieces.assemble(messages, True) != render(tokenizer, fmt, messages, generation_prompt=True):
            return None, "the per-role pieces do not reproduce the chat template's rendering"
    if any("{{" in p or "}}" in p or '"""' in p for p in (preamble, *heads.values(), *tails.values(), pieces.generation_prompt)):
        return None, "the template's text holds '{{', '}}' or '\"\"\"', which a Modelfile TEMPLATE cannot carry verbatim"
    return pieces, ""


def modelfile(gguf_name: str, stop_tokens: list[str], pieces: Pieces | None) -> str:
    """The Modelfile text: FROM the GGUF beside it, TEMPLATE when derived, a stop per end-of-turn token."""
    lines = [f"FROM ./{gguf_name}"]
    if pieces is not None:
        lines.append(f'TEMPLATE """{pieces.go_template()}"""')
    lines += [f"PARAMETER stop {_quoted(token)}" for token in stop_tokens]
    return "\n".join(lines) + "\n"


def _conversation(system: bool) -> list[dict[str, str]]:
    turns = [{"role": "user", "content": U1}, {"role": "assistant", "content": A1}, {"role": "user", "content": U2}]
    return [{"role": "system", "content": S}, *turns] if system else turns


def _split(text: str, sentinel: str) -> tuple[str, str]:
    head, _, tail = text.partition(sentinel)
    return head, tail


def _cut(text: str, sentinels: list[str]) -> list[str]:
    """The text between the sentinels, in order: len(sentinels) + 1 pieces."""
    pieces = []
    for sentinel in sentinels:
        head, text = _split(text, sentinel)
        pieces.append(head)
    return [*pieces, text]


def _common_suffix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[len(a) - 1 - n] == b[len(b) - 1 - n]:
        n += 1
    return a[len(a) - n:]


def _quoted(token: str) -> str:
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
