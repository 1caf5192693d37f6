"""Request validation and the OpenAI shapes, in-process: the real app over a real engine (tiny base,
one random adapter) through Starlette's TestClient, no server process."""

import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from assets.serving import api

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_registry  # noqa: E402


def test_requests_take_openai_defaults_and_ignore_unknown_fields() -> None:
    chat = api.ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "u-1",
                                           "stream_options": {"include_usage": True}})
    assert (chat.temperature, chat.max_tokens, chat.stream, chat.stops()) == (1.0, 256, False, ())
    assert api.CompletionRequest.model_validate({"model": "m", "prompt": ["one"], "stop": "\n"}).stops() == ("\n",)
    assert api.CompletionRequest.model_validate({"model": "m", "prompt": "x"}).token_limit() == 16
    assert api.ChatRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5}).token_limit() == 5


@pytest.mark.parametrize("body, field", [
    ({"model": "m", "messages": []}, "messages"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "", "messages": [{"role": "user", "content": "x"}]}, "model"),
])
def test_malformed_chat_requests_are_refused_naming_the_field(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        api.ChatRequest.model_validate(body)
    assert api.validation_error_body(error.value.errors())["error"]["param"] == field


def test_two_prompts_in_one_completion_request_are_refused() -> None:
    with pytest.raises(ValidationError, match="one prompt per request"):
        api.CompletionRequest.model_validate({"model": "m", "prompt": ["a", "b"]})


def test_sse_events_and_chunks() -> None:
    assert api.sse("[DONE]") == "data: [DONE]\n\n"
    first = api.chunk("id1", "m", True, None, None, first=True)
    assert first["object"] == "chat.completion.chunk" and first["choices"][0]["delta"] == {"role": "assistant"}
    assert json.loads(api.sse(api.chunk("id1", "m", False, "hi", None))[6:])["choices"][0]["text"] == "hi"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    from fastapi.testclient import TestClient

    from assets.serving.generation import Engine
    from assets.serving.server import Batcher, create_app

    registry, _, _ = tiny_registry.build(tmp_path_factory.mktemp("api"), ["alpha"])
    engine = Engine(registry, "full", "float32", "cpu")
    batcher = Batcher(engine, window_ms=1)
    with TestClient(create_app(engine, batcher)) as test_client:
        yield test_client
    batcher.close()


def test_models_and_the_error_bodies(client) -> None:
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["base", "alpha"]
    missing = client.post("/v1/completions", json={"model": "gamma", "prompt": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    bad = client.post("/v1/completions", json={"model": "alpha", "prompt": "x", "temperature": -1})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "temperature"
    broken = client.post("/v1/completions", content=b"{oops", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and set(broken.json()["error"]) == {"message", "type", "param", "code"}
    long = client.post("/v1/completions", json={"model": "alpha", "prompt": "x", "max_tokens": 4096})
    assert long.status_code == 400 and long.json()["error"]["code"] == "context_length_exceeded"


def test_a_stop_string_ends_the_text_before_it(client) -> None:
    body = {"model": "alpha", "prompt": "Once", "max_tokens": 12, "temperature": 0}
    full = client.post("/v1/completions", json=body).json()["choices"][0]
    stop = next((c for c in full["text"][2:] if c.isprintable() and c != "\ufffd"), None)
    if stop is None:
        pytest.skip("the random adapter produced no printable character to stop at")
    cut = client.post("/v1/completions", json={**body, "stop": [stop]}).json()["choices"][0]
    assert cut["text"] == full["text"][:full["text"].index(stop)] and cut["finish_reason"] == "stop"
