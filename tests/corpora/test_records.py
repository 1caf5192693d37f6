"""Record shapes: each accepted shape, the ShareGPT alias, precedence, and every rejection reason."""

import pytest

from assets.corpora.records import Record, parse_record


def test_text_record():
    assert parse_record({"text": "Hello world"}) == Record("text", ["text"], ["Hello world"])


def test_result_unpacks_as_plain_tuple():
    kind, roles, contents = parse_record({"text": "x"})
    assert (kind, roles, contents) == ("text", ["text"], ["x"])


def test_chat_record_keeps_contents_verbatim():
    record = parse_record({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  Hi?  "},
        {"role": "assistant", "content": "Hello."},
    ]})
    assert record == Record("chat", ["system", "user", "assistant"],
                            ["Be brief.", "  Hi?  ", "Hello."])


def test_sharegpt_alias_maps_roles():
    record = parse_record({"conversations": [
        {"from": "system", "value": "S"},
        {"from": "human", "value": "Q"},
        {"from": "gpt", "value": "A"},
    ]})
    assert record == Record("chat", ["system", "user", "assistant"], ["S", "Q", "A"])


def test_instruction_with_input():
    record = parse_record({"instruction": "Translate.", "input": "Bonjour", "output": "Hello"})
    assert record == Record("instruction", ["user", "assistant"], ["Translate.\n\nBonjour", "Hello"])


@pytest.mark.parametrize("extra", [{}, {"input": ""}, {"input": "   "}, {"input": None}])
def test_instruction_without_input(extra):
    record = parse_record({"instruction": "Say hi.", "output": "hi", **extra})
    assert record == Record("instruction", ["user", "assistant"], ["Say hi.", "hi"])


def test_extra_keys_are_ignored():
    record = parse_record({"id": 7, "source": "wiki", "meta": {"score": 0.9}, "text": "doc"})
    assert record == Record("text", ["text"], ["doc"])


def test_precedence_messages_over_instruction_over_text():
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert parse_record({"messages": chat, "instruction": "i", "output": "o", "text": "t"}).kind == "chat"
    assert parse_record({"instruction": "i", "output": "o", "text": "t"}).kind == "instruction"


def test_null_keys_do_not_pick_the_shape():
    # A csv/parquet row of a mixed file carries every column; the null ones must not win.
    assert parse_record({"messages": None, "instruction": None, "output": None, "text": "t"}) \
        == Record("text", ["text"], ["t"])


@pytest.mark.parametrize("obj, reason", [
    ([1, 2], "record is a list, expected a JSON object"),
    ("hello", "record is a string, expected a JSON object"),
    (3, "record is an int, expected a JSON object"),
    ({"foo": 1, "bar": 2},
     "unrecognised record shape: keys ['foo', 'bar']; expected text, messages or instruction/output"),
    ({"text": None}, "text is null"),
    ({"text": 5}, "text must be a string, got int"),
    ({"text": "  \n\t"}, "empty text"),
    ({"text": ""}, "empty text"),
    ({"instruction": "", "output": "o"}, "empty instruction"),
    ({"instruction": "i", "output": " "}, "empty output"),
    ({"instruction": "i"}, "instruction record has no output"),
    ({"output": "o"}, "instruction record has no instruction"),
    ({"instruction": ["i"], "output": "o"}, "instruction must be a string, got list"),
    ({"instruction": "i", "input": 3, "output": "o"}, "input must be a string, got int"),
    ({"messages": "hi"}, "messages must be a list, got string"),
    ({"messages": []}, "messages is empty"),
    ({"messages": None}, "messages must be a list, got null"),
    ({"conversations": None}, "conversations must be a list, got null"),
    ({"messages": ["hi"]}, "message 1: must be an object, got string"),
    ({"messages": [{"content": "x"}]}, "message 1: missing role"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]},
     "message 2: role 'bot' is not one of system/user/assistant"),
    ({"messages": [{"role": 1, "content": "q"}]}, "message 1: role must be a string, got int"),
    ({"messages": [{"role": "user", "content": 5}]},
     "message 1: content must be a string or a list of text parts, got int"),
    ({"messages": [{"role": "user"}]}, "message 1: missing content"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
     "message 2: empty assistant content"),
    ({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]},
     "chat has no assistant message"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "bot", "value": "a"}]},
     "message 2: from 'bot' is not one of system/human/gpt"),
    ({"conversations": [{"from": "human", "value": 1}]}, "message 1: value must be a string, got int"),
])
def test_rejections_name_the_problem(obj, reason):
    assert parse_record(obj) == reason


def test_openai_content_parts_are_joined():
    record = parse_record({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Look:"}, {"type": "text", "text": "why?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Because."}]},
    ]})
    assert record == Record("chat", ["user", "assistant"], ["Look:\nwhy?", "Because."])


@pytest.mark.parametrize("content, reason", [
    ([], "message 1: content is an empty list of parts"),
    (["hi"], "message 1: content part 1 must be an object, got string"),
    ([{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}],
     "message 1: content part 2 has type 'image_url'; only text parts can be trained on"),
    ([{"text": "a"}], "message 1: content part 1 has no type; only text parts can be trained on"),
    ([{"type": "text", "text": 3}], "message 1: content part 1: text must be a string, got int"),
])
def test_content_parts_that_are_not_text(content, reason):
    chat = [{"role": "user", "content": content}, {"role": "assistant", "content": "a"}]
    assert parse_record({"messages": chat}) == reason


@pytest.mark.parametrize("obj, reason", [
    ({"text": "a\x00b"}, "text contains a NUL character at position 2"),
    ({"text": "ab\ud800"}, "text contains an unpaired surrogate U+D800 at position 3"),
    ({"instruction": "i", "input": "\x00", "output": "o"}, "input contains a NUL character at position 1"),
    ({"instruction": "i", "output": "o\udfff"}, "output contains an unpaired surrogate U+DFFF at position 2"),
    ({"messages": [{"role": "user", "content": "q\x00"}, {"role": "assistant", "content": "a"}]},
     "message 1: content contains a NUL character at position 2"),
    ({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "\ud83d"}]},
     "message 2: value contains an unpaired surrogate U+D83D at position 1"),
])
def test_nul_and_lone_surrogates_are_rejected(obj, reason):
    assert parse_record(obj) == reason


def test_user_data_in_reasons_is_short_and_printable():
    reason = parse_record({"messages": [{"role": "x" * 100 + "\x00", "content": "q"}]})
    assert reason == f"message 1: role '{'x' * 40}...' is not one of system/user/assistant"
    reason = parse_record({"k\x00\ud800": 1})
    assert reason.startswith("unrecognised record shape: keys ['k\\\\x00\\\\ud800']")
