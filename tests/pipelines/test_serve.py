"""`loraline serve` as users start it: the installed command in its own process on a free loopback
port, over a registry of the built-in tiny base and two adapters (random non-zero LoRA weights, so
every adapter answers differently), compared with plain PeftModel / base generation in this process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serving"))
import tiny_registry  # noqa: E402

PROMPT = "How do I keep bread fresh?"
TOKENS = 12
LOADER = ("4bit", "float32")  # the server's default precision; float32 compute so this process computes alike


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve")
    registry, base, adapters = tiny_registry.build(root, ["alpha", "beta"])
    port = free_port()
    loraline = Path(sys.executable).parent / "loraline"
    # A long batching window, so requests sent together surely share a batch (the test asserts it did).
    command = [str(loraline), "serve", "--port", str(port), "--registry", str(registry), "--precision", LOADER[0],
               "--dtype", LOADER[1], "--device", "cpu", "--window-ms", "400", "--reload-seconds", "0.5"]
    log = open(root / "server.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert process.poll() is None, (root / "server.log").read_text()
                time.sleep(0.25)
        yield {"url": url, "process": process, "registry": registry, "base": base, "adapters": adapters, "root": root, "log": root / "server.log"}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def reference(server):
    """Greedy answers computed here, the way a user checks an adapter: PeftModel on the same 4-bit base."""
    import torch
    from peft import PeftModel

    from assets.models.chat_format import chat_format
    from assets.models.loading import load_quantized_base, load_tokenizer

    base_dir = Path(server["base"]["path"])
    tokenizer = load_tokenizer(base_dir)
    stop = chat_format(tokenizer).stop_token_ids(tokenizer.eos_token_id)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]

    def answer(model) -> str:
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=stop)
        return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def adapted(domain: str) -> str:
        model = PeftModel.from_pretrained(load_quantized_base(base_dir, torch.float32, "cpu"), str(server["registry"] / domain))
        return answer(model.eval())

    return {"base": answer(load_quantized_base(base_dir, torch.float32, "cpu").eval()), "adapted": adapted}


def chat(server, model: str, **extra) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": TOKENS, "temperature": 0, **extra}
    return httpx.post(f"{server['url']}/v1/chat/completions", json=body, timeout=120)


def text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_models_lists_base_and_every_domain(server) -> None:
    body = httpx.get(f"{server['url']}/v1/models").json()
    assert body["object"] == "list" and [m["id"] for m in body["data"]] == ["base", "alpha", "beta"]
    assert all(m["object"] == "model" for m in body["data"])


def test_each_domain_answers_like_its_peft_adapter_and_base_like_the_base(server, reference) -> None:
    answers = {model: text(chat(server, model)) for model in ("alpha", "beta", "base")}
    assert answers["alpha"] == reference["adapted"]("alpha")
    assert answers["beta"] == reference["adapted"]("beta")
    assert answers["base"] == reference["base"]
    assert len(set(answers.values())) == 3  # each adapter really changes the answer


def test_a_mixed_batch_equals_the_requests_one_by_one(server) -> None:
    models = ["alpha", "beta", "base", "alpha"]
    alone = [text(chat(server, m)) for m in models]
    before = httpx.get(f"{server['url']}/stats").json()
    with ThreadPoolExecutor(len(models)) as pool:
        together = [text(r) for r in pool.map(lambda m: chat(server, m), models)]
    after = httpx.get(f"{server['url']}/stats").json()
    assert together == alone
    assert after["rows"] - before["rows"] == len(models) and after["batches"] - before["batches"] < len(models)  # some shared a batch
    assert max(after["recent_batch_sizes"][-(after["batches"] - before["batches"]):]) >= 2


def test_completions_and_sampling_with_a_seed(server) -> None:
    body = {"model": "alpha", "prompt": "Bread stays fresh", "max_tokens": 8, "temperature": 0.9, "seed": 7}
    first = httpx.post(f"{server['url']}/v1/completions", json=body, timeout=120).json()
    again = httpx.post(f"{server['url']}/v1/completions", json=body, timeout=120).json()
    assert first["object"] == "text_completion" and first["choices"][0]["text"] == again["choices"][0]["text"]
    assert first["usage"]["completion_tokens"] <= 8


def test_streaming_delivers_the_same_text(server) -> None:
    for model in ("beta", "base"):
        events = []
        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": TOKENS, "temperature": 0, "stream": True}
        with httpx.stream("POST", f"{server['url']}/v1/chat/completions", json=body, timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line:
                    assert line.startswith("data: ")
                    events.append(line.removeprefix("data: "))
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert streamed == text(chat(server, model))


def test_unknown_model_and_malformed_requests_get_the_openai_error_shape(server) -> None:
    missing = chat(server, "no-such-domain")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == "model" and "no-such-domain" in error["message"]
    bad = httpx.post(f"{server['url']}/v1/chat/completions", json={"model": "alpha", "messages": [], "max_tokens": 0})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.post(f"{server['url']}/v1/completions", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400


def test_a_new_registry_entry_is_served_without_a_restart(server, reference) -> None:
    from assets.serving.registry import publish

    adapter = tiny_registry.random_adapter(server["base"], server["root"] / "adapters" / "gamma", seed=9)
    publish(server["registry"], tiny_registry.candidate("gamma", adapter, server["base"], "g" * 32), server["base"])
    for _ in range(240):
        if "gamma" in [m["id"] for m in httpx.get(f"{server['url']}/v1/models").json()["data"]]:
            break
        time.sleep(0.25)
    assert text(chat(server, "gamma")) == reference["adapted"]("gamma")


def test_the_server_stops_cleanly(server) -> None:
    process = server["process"]
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert "Application shutdown complete" in server["log"].read_text()
