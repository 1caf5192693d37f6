"""Every model family through the real job: a base model a user brings, in a local directory, goes
from landing folder to merged model with no code change (issue: any base model a user brings).

Per family, a tiny random-weight stand-in with the family's real module layout, tokenizer
conventions and published chat template (family_models.py) runs `domain_finetune_job` on a chat
domain, and the test checks what a user would: answers supervised exactly (plus the model's own
end-of-turn token), the adapter beats its base, merge parity, a merged model that loads with
`AutoModelForCausalLM`, and generation that stops at the end-of-turn token. One JSON summary per
family is written under test-artifacts/families/ (the README's table and the closing note's numbers).
"""

import json
import random
from pathlib import Path

import dagster as dg
import pytest
from family_models import build_family_model
from family_specs import FAMILIES

from assets.corpora.assets import raw_corpus
from assets.evaluation.assets import adapter_evaluation
from assets.foundation.assets import base_model
from assets.models.chat_format import FALLBACK_CHAT_TEMPLATE
from assets.quality.assets import clean_corpus
from assets.release.assets import merged_model
from assets.release.gguf.assets import gguf_export
from assets.tokenization.assets import training_dataset
from assets.tokenization.formatting import supervised_runs
from assets.training.assets import qlora_adapter
from pipelines.environment import resources_for
from pipelines.jobs import base_model_job, domain_finetune_job
from pipelines.registration import register_domains
from resources.compute import ComputeSettings

pytestmark = pytest.mark.matrix

DOMAIN = "chat"
# Families the GGUF writer exports today; the others are skipped with the reason (Llama 3's rope scaling,
# SentencePiece-style vocabularies, architectures llama.cpp names differently). Widen as the writer grows.
GGUF_EXPORTED = frozenset({"qwen2"})
SUMMARY_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "families"
# (case, family, config overrides): every family, and one whose MLP width the 4-bit CPU kernel cannot
# run and whose context (256 tokens) is shorter than the default max_seq_len (1024).
ODD = {"intermediate_size": 200, "max_position_embeddings": 256}
CASES = [(family, family, {}) for family in sorted(FAMILIES)] + [("llama3-mlp200-ctx256", "llama3", ODD)]
# Enough steps at a high rate for a random-weight base to learn where answers end.
RUN_CONFIG = {"ops": {
    "qlora_adapter": {"config": {"max_steps": 120, "learning_rate": 0.01, "logging_steps": 40, "lora_rank": 8}},
    "adapter_evaluation": {"config": {"generations": 1, "max_new_tokens": 8}},
}}
WORDS = ("river stone lantern copper meadow harbor violet engine cedar orbit pepper marble falcon glacier "
         "thunder willow saddle quartz ember canyon lemon piano comet basil tundra velvet anchor maple "
         "signal prism walnut ferry summit cobalt dune ivory tulip beacon garnet hollow").split()


ANSWERS = ("Yes, that works.", "Sorry, not today.", "It depends on the weather.")


def conversations(n: int = 72, seed: int = 0) -> list[dict]:
    """Chat records a domain owner would land: a system prompt on half of them, a second exchange on
    a third; questions vary, answers come from a small set, so even a random-weight base learns
    within a few dozen steps what to answer and where an answer ends."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b, c = rng.sample(WORDS, 3)
        messages = [{"role": "user", "content": f"Can I bring the {a} and the {b} along?"},
                    {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]}]
        if i % 3 == 0:
            messages += [{"role": "user", "content": f"And the {c}?"}, {"role": "assistant", "content": ANSWERS[(i + 1) % len(ANSWERS)]}]
        if i % 2 == 0:
            messages.insert(0, {"role": "system", "content": "Answer with one short sentence."})
        rows.append({"messages": messages})
    return rows


NOTES = [f"Field note {i}: the {a} sat beside the {b}, and nobody moved it before the {c} came." for i, (a, b, c) in
         enumerate(zip(WORDS, WORDS[7:] + WORDS[:7], WORDS[13:] + WORDS[:13]))][:12]


def latest(instance: dg.DagsterInstance, asset: str, partition: str | None = DOMAIN) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1
    ).records
    assert records, f"{asset} was not materialized"
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def run_family(root: Path, family: str, overrides: dict) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult, list[dict]]:
    build_family_model(family, root / "base", **overrides)
    landing = root / "landing" / DOMAIN
    landing.mkdir(parents=True)
    rows = conversations()
    (landing / "conversations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (landing / "notes.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in NOTES))
    # The real assets and resources; training in process (the Pipes launcher is tested in tests/training).
    defs = dg.Definitions(
        assets=[base_model, raw_corpus, clean_corpus, training_dataset, qlora_adapter, adapter_evaluation, merged_model, gguf_export],
        jobs=[domain_finetune_job, base_model_job],
        resources=resources_for() | {"compute": ComputeSettings(training_launcher="in_process")},
    )
    instance = dg.DagsterInstance.ephemeral()
    register_domains(instance, [DOMAIN])
    assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
    assert latest(instance, "base_model", None)["fingerprint"]
    result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
        instance=instance, partition_key=DOMAIN, run_config=RUN_CONFIG, raise_on_error=False)
    return instance, result, rows


@pytest.mark.parametrize(("case", "family", "overrides"), CASES, ids=[case for case, _, _ in CASES])
def test_a_family_goes_from_landing_folder_to_merged_model(case, family, overrides, tmp_path, monkeypatch):
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = FAMILIES[family]
    monkeypatch.setenv("LORALINE_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    monkeypatch.setenv("LORALINE_BASE_MODEL", str(tmp_path / "base"))
    instance, result, rows = run_family(tmp_path, family, overrides)

    failed = [(e.check_name, e.description) for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success and not failed, failed or [str(e) for e in result.all_events if e.is_failure]
    dataset, adapter = latest(instance, "training_dataset"), latest(instance, "qlora_adapter")
    evaluation, merged = latest(instance, "adapter_evaluation"), latest(instance, "merged_model")

    # Every answer, and only the answers, carry loss, each closed by the family's end-of-turn token.
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    train = load_from_disk(str(Path(dataset["path"]) / "train"))
    by_line = {i + 1: [m["content"] for m in r["messages"] if m["role"] == "assistant"] for i, r in enumerate(rows)}
    end_text = spec.end_of_turn if spec.chat_template else tokenizer.eos_token
    for ids, labels, line, source in zip(train["input_ids"], train["labels"], train["line"], train["source_file"]):
        if source == "notes.jsonl":  # plain text: all supervised, ends with EOS, at most one BOS in front
            assert labels == ids and ids[-1] == tokenizer.eos_token_id and NOTES[line - 1] in tokenizer.decode(ids)
            assert ids[:2] != [tokenizer.bos_token_id] * 2
            continue
        decoded = [tokenizer.decode(run, skip_special_tokens=False, clean_up_tokenization_spaces=False) for run in supervised_runs(ids, labels)]
        expected = by_line[line]
        assert len(decoded) == len(expected), (line, decoded, expected)
        for text, answer in zip(decoded, expected):
            assert text.lstrip().startswith(answer), (text, answer)
            assert text.lstrip()[len(answer):].strip() == end_text, text  # Llama 2 writes " </s>": the space rides along
    assert dataset["rows_rejected"] == 0

    # The adapter covers every linear projection of the family (never the head) and beats the base.
    resolved = adapter["resolved"]
    assert set(resolved["target_modules"]) == set(spec.linear_names)
    assert resolved["adapted_layers"] == len(spec.linear_names) * spec.config_kwargs.get("num_hidden_layers", 2)
    assert evaluation["adapter_beats_base"] and evaluation["eval_loss_adapter"] < evaluation["eval_loss_base"]
    if overrides == ODD:
        assert resolved["full_precision_layers"] and all(".mlp." in name for name in resolved["full_precision_layers"])
        assert dataset["settings"]["max_seq_len"] == 256 and "clamped to 256" in dataset["settings"]["max_seq_len_clamped"]

    # The merged model: parity, loads as a plain transformers model, keeps tied embeddings, stops at end of turn.
    assert merged["max_abs_logit_diff"] <= 1e-3
    merged_dir = Path(merged["path"])
    model = AutoModelForCausalLM.from_pretrained(merged_dir)
    merged_tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    assert model.config.tie_word_embeddings == spec.tie_word_embeddings
    end_of_turn = merged_tokenizer.convert_tokens_to_ids(spec.end_of_turn if spec.chat_template else merged_tokenizer.eos_token)
    assert end_of_turn in list(model.generation_config.eos_token_id)
    # A base model without a template ships the layout it was trained on.
    assert merged_tokenizer.chat_template == (tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE)
    # Served as people serve it: the model's own template and generation prompt (Qwen3 without thinking,
    # as the data has none; other templates ignore the flag).
    input_ids = merged_tokenizer.apply_chat_template(rows[1]["messages"][:-1], add_generation_prompt=True, return_tensors="pt",
                                                     return_dict=True, enable_thinking=False)["input_ids"]
    with torch.no_grad():
        generated = model.generate(input_ids=input_ids, max_new_tokens=24, do_sample=False)[0, input_ids.shape[1]:].tolist()
    stopped = bool(generated) and generated[-1] == end_of_turn and len(generated) < 24
    assert stopped, merged_tokenizer.decode(generated, skip_special_tokens=False)

    # GGUF: exported and matching the merged model by logits, or skipped with a reason naming what it lacks.
    gguf = latest(instance, "gguf_export")
    if family in GGUF_EXPORTED:
        assert "skipped" not in gguf, gguf["skipped"]
        assert gguf["relative_logit_diff"] <= gguf["parity_tolerance"] and set(gguf["reloaded_by_transformers"]) >= {"f16"}
    else:
        assert "is not supported by the GGUF writer yet" in gguf["skipped"], gguf

    SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
    (SUMMARY_DIR / f"{case}.json").write_text(json.dumps({
        "family": case, "source_model": spec.source_model, "architecture": type(model).__name__,
        "template": dataset["template"], "target_modules": resolved["target_modules"],
        "adapted_layers": resolved["adapted_layers"], "full_precision_layers": resolved["full_precision_layers"],
        "trainable_percent": resolved["trainable_percent"], "compute_dtype": resolved["compute_dtype"],
        "eval_loss_base": evaluation["eval_loss_base"], "eval_loss_adapter": evaluation["eval_loss_adapter"],
        "max_abs_logit_diff": merged["max_abs_logit_diff"], "tied_embeddings": spec.tie_word_embeddings,
        "generation": merged_tokenizer.decode(generated, skip_special_tokens=False), "stopped_at_end_of_turn": stopped,
        "gguf": gguf.get("skipped") or f"exported, relative logit diff {gguf['relative_logit_diff']:.1e}",
    }, indent=2))
