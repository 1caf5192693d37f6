"""The Ollama Modelfile (assets/release/gguf/modelfile.py): its TEMPLATE's pieces reproduce the chat
template's rendering of conversations it was not derived from; a template that cannot be cut into
per-role pieces gets no TEMPLATE, with the reason, instead of a wrong one."""

import pytest

from assets.models.chat_format import chat_format, render
from assets.release.gguf.modelfile import derive_pieces, modelfile


@pytest.fixture(scope="module")
def tokenizer():
    from assets.foundation.tiny_llama import build_tokenizer

    return build_tokenizer()


CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d"}, {"role": "user", "content": "e\nf"}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_pieces_reproduce_the_template_on_new_conversations(tokenizer, messages) -> None:
    fmt = chat_format(tokenizer)
    pieces, why_not = derive_pieces(tokenizer, fmt)
    assert why_not == "" and pieces is not None
    assert pieces.assemble(messages, True) == render(tokenizer, fmt, messages, generation_prompt=True)


def test_the_built_in_template_becomes_this_go_template(tokenizer) -> None:
    pieces, _ = derive_pieces(tokenizer, chat_format(tokenizer))
    assert pieces.preamble == "<|begin_of_text|>"
    assert pieces.heads == {"user": "<|user|>\n", "assistant": "<|assistant|>\n", "system": "<|system|>\n"}
    assert pieces.tails == {"user": "<|end|>\n", "assistant": "<|end_of_text|>\n", "system": "<|end|>\n"}
    assert pieces.generation_prompt == "<|assistant|>\n"
    text = modelfile("support-q8_0.gguf", ["<|end_of_text|>", "<|end|>"], pieces)
    lines = text.splitlines()
    assert lines[0] == "FROM ./support-q8_0.gguf" and lines[-2:] == ['PARAMETER stop "<|end_of_text|>"', 'PARAMETER stop "<|end|>"']
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template.startswith("<|begin_of_text|>{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}")
    assert '{{ else if eq .Role "assistant" }}<|assistant|>\n{{ .Content }}{{ if not $last }}<|end_of_text|>\n{{ end }}' in template
    assert template.endswith('{{ if and $last (ne .Role "assistant") }}<|assistant|>\n{{ end }}{{ end }}')
    assert template.count("{{") == template.count("}}")


def test_a_template_that_does_not_split_by_role_gets_no_template(tokenizer) -> None:
    copy = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                               pad_token="<|pad|>", chat_template="{% for m in messages %}{{ m['content'] + m['content'] }}{% endfor %}")
    pieces, why_not = derive_pieces(copy, chat_format(copy))
    assert pieces is None and why_not
    text = modelfile("m.gguf", ["<|end_of_text|>"], pieces)
    assert text == 'FROM ./m.gguf\nPARAMETER stop "<|end_of_text|>"\n'
