"""The engine's registry reload (add, swap, remove, add back) and its generation, in this process."""

import sys
from pathlib import Path

import pytest

from assets.serving.generation import BASE, Engine, GenerationRequest, UnknownModel
from assets.serving.registry import publish, remove

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_registry  # noqa: E402


def answer(engine: Engine, model: str, tokens: int = 8) -> str:
    return engine.complete([GenerationRequest(model, engine.chat_prompt([{"role": "user", "content": "Hello there"}]), tokens)])[0].text


def test_reload_adds_swaps_removes_and_adds_back(tmp_path: Path) -> None:
    registry, base, adapters = tiny_registry.build(tmp_path, ["alpha"])
    engine = Engine(registry, "full", "float32", "cpu")
    first = answer(engine, "alpha")
    assert engine.refresh() == {"added": [], "swapped": [], "removed": []}

    other = tiny_registry.random_adapter(base, tmp_path / "adapters" / "alpha-2", seed=5)
    publish(registry, tiny_registry.candidate("alpha", other, base, "b" * 32), base)
    assert engine.refresh()["swapped"] == ["alpha"]
    swapped = answer(engine, "alpha")
    assert swapped != first

    remove(registry, "alpha")
    assert engine.refresh()["removed"] == ["alpha"] and engine.models() == [BASE]
    with pytest.raises(UnknownModel):
        answer(engine, "alpha")
    base_only = answer(engine, BASE)

    publish(registry, tiny_registry.candidate("beta", adapters["alpha"], base, "c" * 32), base)
    assert engine.refresh()["added"] == ["beta"]
    assert answer(engine, "beta") == first  # the first adapter's weights again, under another name
    assert answer(engine, BASE) == base_only


def test_an_adapter_on_another_base_is_not_served(tmp_path: Path) -> None:
    registry, base, adapters = tiny_registry.build(tmp_path, ["alpha"])
    publish(registry, tiny_registry.candidate("beta", adapters["alpha"], {**base, "fingerprint": "0" * 64}, "d" * 32), base)
    assert Engine(registry, "full", "float32", "cpu").models() == [BASE, "alpha"]


def test_max_tokens_seed_and_stop_per_row(tmp_path: Path) -> None:
    registry, _, _ = tiny_registry.build(tmp_path, ["alpha"])
    engine = Engine(registry, "full", "float32", "cpu")
    prompt = engine.text_prompt("Once upon a time")
    sampled = GenerationRequest("alpha", prompt, 10, temperature=1.0, seed=11)
    rows = engine.complete([sampled, GenerationRequest(BASE, prompt, 3), GenerationRequest("alpha", prompt, 6)])
    assert rows[1].completion_tokens <= 3 and rows[2].completion_tokens <= 6
    assert engine.complete([sampled])[0].text == rows[0].text  # the seed, not the neighbours, decides
    streamed: list[str] = []
    whole = engine.complete([GenerationRequest("alpha", prompt, 10, on_text=streamed.append)])[0]
    assert "".join(streamed) == whole.text
