"""The OpenAI-compatible HTTP app (FastAPI) over one Engine, and the batcher that feeds it.

One worker thread owns the model (torch modules are not safe to share between threads): it takes
the first waiting request, keeps collecting for `window_ms` (up to `max_batch`), and serves them in
one `Engine.complete` call, whatever domains they name. Between batches (and every
`reload_seconds` when idle) it re-reads the registry, so a promotion shows up without a restart.
"""

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from assets.serving import api
from assets.serving.generation import BASE, Engine, GenerationRequest, GenerationResult, UnknownModel


@dataclass
class BatchStats:
    batches: int = 0
    rows: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)  # the newest 1000 batch sizes


class Batcher:
    def __init__(self, engine: Engine, window_ms: float = 10.0, max_batch: int = 32, reload_seconds: float = 2.0) -> None:
        self.engine, self.window, self.max_batch, self.reload_seconds = engine, window_ms / 1000, max_batch, reload_seconds
        self.stats = BatchStats()
        self._queue: queue.Queue[tuple[GenerationRequest, Future] | None] = queue.Queue()
        self._refreshed = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="loraline-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest) -> Future:
        future: Future = Future()
        self._queue.put((request, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.reload_seconds)
            except queue.Empty:
                self._refresh()
                continue
            if first is None:
                return
            batch, deadline = [first], time.monotonic() + self.window
            while len(batch) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # close after this batch
                    break
                batch.append(item)
            self._serve(batch)
            if time.monotonic() - self._refreshed > self.reload_seconds:
                self._refresh()

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            self.engine.refresh()
        except Exception as error:  # a registry mid-edit by hand: keep serving what is loaded, say why
            api_log(f"registry reload failed, serving what is loaded: {type(error).__name__}: {error}")

    def _serve(self, batch: list[tuple[GenerationRequest, Future]]) -> None:
        live = []
        for request, future in batch:  # a domain removed since the request was accepted
            if request.model != BASE and request.model not in self.engine.adapters:
                future.set_exception(UnknownModel(request.model))
            else:
                live.append((request, future))
        if not live:
            return
        self.stats.batches += 1
        self.stats.rows += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        self.stats.sizes = [*self.stats.sizes[-999:], len(live)]
        try:
            results = self.engine.complete([request for request, _ in live])
        except Exception as error:
            for _, future in live:
                future.set_exception(error)
            return
        for (_, future), result in zip(live, results):
            future.set_result(result)


def api_log(message: str) -> None:
    import logging

    logging.getLogger("loraline.serving").warning(message)


def create_app(engine: Engine, batcher: Batcher) -> Any:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title="loraline", description="One base, one LoRA adapter per domain, OpenAI-compatible.")
    started = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(api.validation_error_body(list(error.errors())), status_code=400)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        code = "not_found" if error.status_code == 404 else None
        return JSONResponse(api.error_body(str(error.detail), param=None, code=code), status_code=error.status_code)

    @app.get("/v1/models")
    async def models() -> dict:
        return api.models_body(engine.base_name, sorted(engine.adapters), started)

    @app.get("/stats")
    async def stats() -> dict:
        """Batches served so far (not part of the OpenAI API): how many requests shared a forward pass."""
        s = batcher.stats
        return {"batches": s.batches, "rows": s.rows, "largest_batch": s.largest, "recent_batch_sizes": s.sizes[-50:],
                "models": engine.models(), "precision": engine.precision, "dtype": str(engine.dtype).removeprefix("torch.")}

    @app.post("/v1/chat/completions")
    async def chat(body: api.ChatRequest) -> Any:
        return await _answer(body, True, lambda: engine.chat_prompt([m.model_dump() for m in body.messages]))

    @app.post("/v1/completions")
    async def completions(body: api.CompletionRequest) -> Any:
        return await _answer(body, False, lambda: engine.text_prompt(body.text()))

    async def _answer(body: api.ChatRequest | api.CompletionRequest, chat: bool, prompt: Any) -> Any:
        if body.model != BASE and body.model not in engine.adapters:
            return _unknown(body.model)
        try:
            ids = prompt()
        except ValueError as error:  # e.g. the chat template refused the conversation
            return JSONResponse(api.error_body(str(error), param="messages" if chat else "prompt"), status_code=400)
        limit = body.token_limit()
        if len(ids) + limit > engine.context_length:
            return JSONResponse(api.error_body(
                f"this model's context is {engine.context_length} tokens; the prompt has {len(ids)} and max_tokens asks {limit}",
                param="max_tokens", code="context_length_exceeded"), status_code=400)
        loop, pieces = asyncio.get_running_loop(), asyncio.Queue()
        request = GenerationRequest(body.model, ids, limit, body.temperature, body.seed, body.stops(),
                                    on_text=(lambda t: loop.call_soon_threadsafe(pieces.put_nowait, t)) if body.stream else None)
        future = asyncio.wrap_future(batcher.submit(request))
        ident = api.new_id("chatcmpl" if chat else "cmpl")
        if body.stream:
            future.add_done_callback(lambda _: pieces.put_nowait(None))
            return StreamingResponse(_events(ident, body.model, chat, pieces, future), media_type="text/event-stream")
        try:
            result: GenerationResult = await future
        except UnknownModel:
            return _unknown(body.model)
        make = api.chat_body if chat else api.completion_body
        return make(ident, body.model, result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens)

    async def _events(ident: str, model: str, chat: bool, pieces: asyncio.Queue, future: Any) -> Any:
        if chat:
            yield api.sse(api.chunk(ident, model, chat, None, None, first=True))
        while (piece := await pieces.get()) is not None:
            yield api.sse(api.chunk(ident, model, chat, piece, None))
        try:
            result = await future
            yield api.sse(api.chunk(ident, model, chat, None, result.finish_reason))
        except Exception as error:  # the stream has begun (status 200 sent): the error goes in-band
            yield api.sse(api.error_body(f"{type(error).__name__}: {error}", kind="server_error"))
        yield api.sse("[DONE]")

    def _unknown(model: str) -> JSONResponse:
        known = ", ".join(engine.models())
        return JSONResponse(api.error_body(f"The model `{model}` does not exist (served: {known}).", param="model", code="model_not_found"),
                            status_code=404)

    return app
