"""Task evaluation in adapter_evaluation: greedy answers to held-out prompts scored with exact match
and ROUGE-L, bits per byte, and the merge gate on a task metric, on the built-in tiny model and a
real Dagster instance."""

import json
import random
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.registration import register_domains

THROUGH_EVALUATION = {dg.AssetKey(a) for a in ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation")}
# A learnable answer: "Yes, restart it." or "No, restart it." at random. The adapter learns to answer
# one of them verbatim (exact match on about half the prompts) but cannot learn the coin, so its
# ROUGE-L stays below 1 and a gate asking for the base's + 1.0 cannot pass.
REPLIES = ("Yes, restart it.", "No, restart it.")
DEVICES = ("router", "laptop", "printer", "phone", "tablet", "camera", "speaker", "monitor", "console", "watch")
ROOMS = ("kitchen", "office", "garage", "attic", "hallway", "bedroom", "basement", "studio", "porch", "library")
PROBLEMS = ("drops the signal", "will not connect", "blinks orange", "reboots at noon", "shows error {n}", "is slow since {n} days")
FAQ_SETTINGS = (
    "tokenization: {eval_fraction: 0.25}\n"
    "training: {max_steps: 80, logging_steps: 40, learning_rate: 0.005, lr_scheduler: constant_with_warmup, lora_rank: 16, lora_alpha: 32}\n"
    "evaluation: {task_examples: 12, generations: 0}\n"
)
NOTES_SETTINGS = "training: {max_steps: 4, logging_steps: 2}\nevaluation: {generations: 0}\n"


def faq_records(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    records, seen = [], set()
    while len(records) < n:
        question = f"The {rng.choice(DEVICES)} in the {rng.choice(ROOMS)} {rng.choice(PROBLEMS).format(n=rng.randrange(2, 999))}. What now?"
        if question not in seen:
            seen.add(question)
            records.append({"instruction": question, "input": "", "output": rng.choice(REPLIES)})
    return records


def note_records(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    words = "comet orbit planet moon crater dust ring star galaxy nebula telescope light year mass gravity".split()
    return [{"text": " ".join(rng.choice(words) for _ in range(rng.randrange(12, 30))).capitalize() + "."} for _ in range(n)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("task_eval")
    landing = root / "landing"
    for domain, records, settings in (("faq", faq_records(120), FAQ_SETTINGS), ("notes", note_records(48), NOTES_SETTINGS)):
        (landing / domain).mkdir(parents=True)
        (landing / domain / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (landing / domain / "domain.yaml").write_text(settings)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(landing))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["faq", "notes"])
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection=THROUGH_EVALUATION)
            runs = {domain: job.execute_in_process(instance=instance, partition_key=domain, raise_on_error=False) for domain in ("faq", "notes")}
            yield {"instance": instance, "runs": runs, "landing": landing}


def evaluation(instance: dg.DagsterInstance, domain: str) -> dict:
    record = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("adapter_evaluation"), asset_partitions=[domain]), limit=1).records[0]
    return {"run_id": record.run_id, **{k: v.value for k, v in record.asset_materialization.metadata.items()}}


def gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "adapter_beats_base")


def test_an_adapter_that_learned_the_answers_outscores_the_base(world) -> None:
    assert world["runs"]["faq"].success
    faq = evaluation(world["instance"], "faq")
    print({k: v for k, v in faq.items() if k.startswith(("task_", "bits_", "eval_loss"))})
    assert faq["task_examples"] == 12 and faq["task_metrics"].startswith("12 held-out prompts")
    # The random-init base answers with noise; the adapter has learned the reply.
    assert faq["task_rouge_l_adapter"] > faq["task_rouge_l_base"] + 0.25
    assert faq["task_exact_match_adapter"] > faq["task_exact_match_base"]
    assert faq["bits_per_byte_adapter"] < faq["bits_per_byte_base"]
    # Loss and bits per byte agree (one byte per token for this tokenizer, special tokens aside).
    assert faq["bits_per_byte_base"] == pytest.approx(faq["eval_loss_base"] * faq["eval_tokens"] / 0.6931471805599453 / faq["eval_bytes"])
    assert "restart it." in faq["task_samples"] and faq["task_samples"].startswith("| prompt | reference | base | adapter |")
    assert faq["adapter_beats_base"] and faq["gate_metric"] == "loss"
    assert gate(world["runs"]["faq"]).description.startswith("decided on eval loss")
    saved = json.loads((Path(faq["path"]) / "evaluation.json").read_text())
    assert len(saved["task_samples"]) == 12 and all(s["reference"] in REPLIES for s in saved["task_samples"])


def test_a_text_domain_reports_task_metrics_as_skipped_and_still_gets_bits_per_byte(world) -> None:
    assert world["runs"]["notes"].success
    notes = evaluation(world["instance"], "notes")
    assert notes["task_examples"] == 0 and notes["task_metrics"].startswith("skipped: no eval example has a prompt and an answer")
    assert "task_rouge_l_adapter" not in notes and notes["task_samples"] == "-"
    assert notes["bits_per_byte_base"] > 0 and notes["bits_per_byte_adapter"] > 0


def test_a_task_gate_with_a_margin_the_adapter_cannot_clear_fails(world) -> None:
    instance, faq = world["instance"], evaluation(world["instance"], "faq")
    strict = {"ops": {"adapter_evaluation": {"config": {"gate_metric": "rouge_l", "gate_margin": 1.0}}}}
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey("adapter_evaluation")})
    result = job.execute_in_process(instance=instance, partition_key="faq", run_config=strict, raise_on_error=False)
    check = gate(result)
    assert not check.passed and check.description.startswith("decided on rouge_l ") and "(required >= base + 1.0)" in check.description
    after = evaluation(instance, "faq")
    assert after["run_id"] == result.run_id and after["adapter_beats_base"] is False and after["gate_metric"] == "rouge_l"
    assert after["task_rouge_l_adapter"] == pytest.approx(faq["task_rouge_l_adapter"])  # same adapter, same greedy answers


def test_a_task_gate_on_a_text_domain_fails_naming_the_reason(world) -> None:
    (world["landing"] / "notes" / "domain.yaml").write_text(NOTES_SETTINGS.replace("generations: 0", "generations: 0, gate_metric: exact_match"))
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey("adapter_evaluation")})
    result = job.execute_in_process(instance=world["instance"], partition_key="notes", raise_on_error=False)
    check = gate(result)
    assert not check.passed and "no task score to decide on (no eval example has a prompt and an answer" in check.description


def test_the_leaderboard_shows_task_scores(world) -> None:
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("domain_leaderboard")})
    assert job.execute_in_process(instance=world["instance"]).success
    board = world["instance"].fetch_materializations(dg.AssetKey("domain_leaderboard"), limit=1).records[0].asset_materialization.metadata
    rows = {line.split(" | ")[0].strip("| "): line for line in board["leaderboard"].value.splitlines()[2:]}
    assert set(rows) == {"faq", "notes"}
    assert rows["faq"].count(" -> ") == 3 and rows["notes"].count(" -> ") == 1  # notes: bits per byte only
