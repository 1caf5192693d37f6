"""The OpenAI wire format: request models (validated), response and stream-chunk bodies, error bodies.

Unknown request fields are accepted and ignored (OpenAI clients send `user`, `stream_options`,
`presence_penalty`, ...), as vLLM does; fields we read are checked and a bad one is a 400 naming it.
"""

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TOKENS_LIMIT = 4096  # per request; the context length bounds it too (checked against the prompt)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    model: str = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0, description="0: greedy (deterministic); OpenAI's default is 1.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Seeds this request's own sampler: same seed, same text.")
    stop: str | list[str] | None = Field(None, description="Up to 4 strings; the text ends before the first one.")
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="One choice per request (several: send several requests).")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stops(self) -> tuple[str, ...]:
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop or []) if s)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_tokens: int = Field(256, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS_LIMIT, description="OpenAI's newer name for max_tokens.")

    def token_limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int = Field(16, ge=1, le=MAX_TOKENS_LIMIT)  # OpenAI's completions default

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("one prompt per request (send several requests; they are batched together)")
        return value

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def token_limit(self) -> int:
        return self.max_tokens


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def validation_error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """FastAPI's validation errors as one OpenAI error: the first problem, with its field as `param`."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    # ("body", "messages", 0, "role") -> "messages.0.role"; a body that is not JSON names no field.
    where = [] if first.get("type") == "json_invalid" else [str(p) for p in first.get("loc", ()) if p != "body"]
    message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in errors)
    return error_body(message or "invalid request", param=".".join(where) or None)


def models_body(base_name: str, domains: list[str], created: int) -> dict[str, Any]:
    entry = {"object": "model", "created": created, "owned_by": "loraline"}
    data = [{"id": "base", **entry, "root": base_name, "parent": None}]
    data += [{"id": domain, **entry, "root": domain, "parent": "base"} for domain in domains]
    return {"object": "list", "data": data}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


def chat_body(ident: str, model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}],
            "usage": usage(prompt_tokens, completion_tokens)}


def completion_body(ident: str, model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {"id": ident, "object": "text_completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
            "usage": usage(prompt_tokens, completion_tokens)}


def chunk(ident: str, model: str, chat: bool, text: str | None, finish: str | None, first: bool = False) -> dict[str, Any]:
    """One stream event: a chat delta (`role` on the first) or a completion text piece."""
    if chat:
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        if text:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()), "model": model, "choices": [choice]}
    choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
    return {"id": ident, "object": "text_completion", "created": int(time.time()), "model": model, "choices": [choice]}


def sse(payload: dict[str, Any] | str) -> str:
    """A server-sent event: `data: <json>` and a blank line (`data: [DONE]` ends the stream)."""
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"
