"""The forgetting matrix's cells: which are reused (from adapter_evaluation, from the previous
leaderboard) and which are computed, on keys made of data versions; and on the built-in tiny model,
computed cells equal a fresh model's losses, and after one domain changes only its row and its
column are computed again, every other number identical."""

from pathlib import Path

import pytest

from assets.evaluation.leaderboard import BASE, DomainEval, cache_from, cells_table, cross_domain_losses, plan_cells
from assets.models.loading import load_quantized_base, load_tokenizer
from assets.models.scoring import supervised_loss

NAMES = ("astronomy", "cooking", "support")


def toy_split(seed: int):
    """Six byte-level examples of the tiny model, a prompt quarter then supervised letters."""
    import random

    import datasets

    from assets.models.batches import IGNORE_INDEX

    rng, rows = random.Random(seed), {"input_ids": [], "labels": []}
    for _ in range(6):
        ids = [256] + [rng.randrange(97, 123) for _ in range(rng.randrange(12, 40))] + [257]
        rows["input_ids"].append(ids)
        rows["labels"].append([IGNORE_INDEX] * (len(ids) // 4) + ids[len(ids) // 4:])
    return datasets.Dataset.from_dict(rows)


def domain(name: str, version: str = "v1", evaluated: dict | None = None, adapter_dir: Path = Path("-"), split=None) -> DomainEval:
    return DomainEval(adapter_dir=adapter_dir, adapter_version=f"{name}-adapter-{version}", eval_version=f"{name}-eval-{version}",
                      load_eval=lambda: split, evaluated=evaluated or {})


def test_the_diagonal_and_the_base_row_come_from_the_evaluations_and_the_rest_is_computed_once() -> None:
    domains = {n: domain(n, evaluated={"base": 5.0, "adapter": 4.0}) for n in NAMES}
    known, todo = plan_cells(domains, "base-v1", "float32", cache={})
    assert {(c.adapter, c.evaluated) for c in known} == {(BASE, n) for n in NAMES} | {(n, n) for n in NAMES}
    assert {c.source for c in known} == {"evaluation"}
    assert sorted((a, e) for a, e, _ in todo) == sorted((a, e) for a in NAMES for e in NAMES if a != e)  # N(N-1) = 6

    cache = {key: 1.0 for _, _, key in todo}  # the first board's computed cells
    domains["cooking"] = domain("cooking", "v2", evaluated={"base": 5.1, "adapter": 3.9})  # new data: new split, new adapter
    known, todo = plan_cells(domains, "base-v1", "float32", cache)
    assert sorted((a, e) for a, e, _ in todo) == sorted([("cooking", "astronomy"), ("cooking", "support"), ("astronomy", "cooking"),
                                                         ("support", "cooking")])  # its row and column: 2(N-1)
    assert sum(c.source == "cache" for c in known) == 2 and sum(c.source == "evaluation" for c in known) == 6


def test_a_new_base_or_dtype_recomputes_everything_not_taken_from_the_evaluations() -> None:
    domains = {n: domain(n) for n in NAMES}  # evaluations that scored other versions: nothing from them
    _, first = plan_cells(domains, "base-v1", "float32", cache={})
    cache = {key: 1.0 for _, _, key in first}
    assert len(first) == 12 and plan_cells(domains, "base-v1", "float32", cache)[1] == []
    assert len(plan_cells(domains, "base-v2", "float32", cache)[1]) == 12
    assert len(plan_cells(domains, "base-v1", "bfloat16", cache)[1]) == 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The built-in tiny base, four LoRA adapters with random (non-zero) weights, and two eval splits per domain."""
    import torch
    from peft import LoraConfig, get_peft_model

    from assets.foundation.tiny_llama import build_model, save_tiny_llama

    root = tmp_path_factory.mktemp("board")
    base = save_tiny_llama(root / "base")
    adapters = {}
    for seed, name in enumerate([*NAMES, "cooking-v2"]):
        torch.manual_seed(seed)
        model = get_peft_model(build_model(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        model.save_pretrained(root / name)
        adapters[name] = root / name
    splits = {name: toy_split(seed=10 + i) for i, name in enumerate([*NAMES, "cooking-v2"])}
    return {"base": base, "adapters": adapters, "splits": splits}


def fresh_loss(tiny: dict, adapter: str | None, split: str) -> float:
    """The loss of one adapter (or the base) on one split, from a model loaded for this cell alone."""
    import torch
    from peft import PeftModel

    model = load_quantized_base(tiny["base"], torch.float32, "cpu")
    if adapter:
        model = PeftModel.from_pretrained(model, str(tiny["adapters"][adapter]))
    return supervised_loss(model, tiny["splits"][split], load_tokenizer(tiny["base"]).pad_token_id, 8, "cpu")[0]


def test_one_changed_domain_recomputes_its_row_and_column_and_nothing_else(tiny) -> None:
    import torch

    def domains(cooking: str) -> dict[str, DomainEval]:
        found = {n: domain(n, adapter_dir=tiny["adapters"][n], split=tiny["splits"][n]) for n in NAMES if n != "cooking"}
        found["cooking"] = domain("cooking", cooking, adapter_dir=tiny["adapters"][f"cooking-{cooking}" if cooking != "v1" else "cooking"],
                                  split=tiny["splits"][f"cooking-{cooking}" if cooking != "v1" else "cooking"])
        return found

    first = cross_domain_losses(tiny["base"], "base-v1", domains("v1"), {}, torch.float32, "cpu")
    assert first.sources() == {"evaluation": 0, "cache": 0, "computed": 12}  # N^2 + the base row
    # Adapters swapped on one base give the numbers of a model loaded for each cell alone.
    assert first.loss["support"]["astronomy"] == pytest.approx(fresh_loss(tiny, "support", "astronomy"), abs=1e-5)
    assert first.base_loss["cooking"] == pytest.approx(fresh_loss(tiny, None, "cooking"), abs=1e-5)
    assert len({round(first.loss[a]["support"], 6) for a in NAMES} | {round(first.base_loss["support"], 6)}) == 4  # the adapters differ

    second = cross_domain_losses(tiny["base"], "base-v1", domains("v2"), cache_from(cells_table(first)), torch.float32, "cpu")
    computed = {(c.adapter, c.evaluated) for c in second.cells if c.source == "computed"}
    assert computed == {("cooking", e) for e in NAMES} | {(a, "cooking") for a in NAMES} | {(BASE, "cooking")}  # 2N-1 + 1
    assert second.sources() == {"evaluation": 0, "cache": 12 - len(computed), "computed": len(computed)}
    for adapter in ("astronomy", "support"):
        for evaluated in ("astronomy", "support"):
            assert second.loss[adapter][evaluated] == first.loss[adapter][evaluated]  # reused, bit for bit
    assert second.loss["cooking"]["cooking"] == pytest.approx(fresh_loss(tiny, "cooking-v2", "cooking-v2"), abs=1e-5)
