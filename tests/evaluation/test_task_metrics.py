"""Task scores and bits per byte: the scoring functions on known cases, prompts rebuilt from labels,
batched greedy generation on the built-in tiny model, the gate settings and the leaderboard row."""

import math

import pytest
from pydantic import ValidationError

from assets.evaluation.leaderboard import leaderboard_markdown
from assets.evaluation.task_generation import CUT_ANSWER, NO_ANSWER, TaskPrompt, greedy_answers, last_answer, supervised_bytes, task_prompts
from assets.evaluation.task_metrics import TaskScores, bits_per_byte, exact_match, rouge_l, task_gate
from assets.models.batches import IGNORE_INDEX as X
from assets.settings.evaluation import EvaluationConfig


def test_exact_match_normalises_whitespace_only() -> None:
    assert exact_match("  Reboot the\n router.  ", "Reboot the router.") == 1.0
    assert exact_match("reboot the router.", "Reboot the router.") == 0.0  # case counts
    assert exact_match("Reboot the router", "Reboot the router.") == 0.0  # punctuation counts


def test_rouge_l_is_rouge_scores_lcs_f1() -> None:
    from rouge_score import rouge_scorer

    reference, prediction = "The cat sat on the mat.", "the cat on the mat"
    # LCS 5 words: precision 5/5, recall 5/6, F1 = 2PR/(P+R) = 10/11.
    assert rouge_l(prediction, reference) == pytest.approx(10 / 11)
    # On ASCII text the word split is rouge-score's own default.
    default = rouge_scorer.RougeScorer(["rougeL"]).score(reference, prediction)["rougeL"].fmeasure
    assert rouge_l(prediction, reference) == pytest.approx(default)
    assert rouge_l(reference, reference) == 1.0 and rouge_l("", reference) == 0.0
    # Non-Latin words are words: rouge-score's default would score both 0.
    assert rouge_l("привет мир", "привет мир") == 1.0 and rouge_l("café crème", "café noir") == pytest.approx(0.5)


def test_bits_per_byte_of_a_uniform_byte_model_is_eight() -> None:
    # A model uniform over 256 byte values pays ln(256) nats per byte-level token: 8 bits per byte.
    assert bits_per_byte(100 * math.log(256), 100) == pytest.approx(8.0)
    # Two tokens per byte at ln(16) nats each is the same 8 bits per byte: the tokenizer drops out.
    assert bits_per_byte(200 * math.log(16), 100) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="at least one byte"):
        bits_per_byte(1.0, 0)


def test_supervised_bytes_counts_the_scored_text_not_the_special_tokens() -> None:
    import datasets

    from assets.foundation.tiny_llama import build_tokenizer

    tokenizer = build_tokenizer()  # byte-level: one token per byte
    eos = tokenizer.eos_token_id
    prompt, answer = list("Q: hi\n".encode()), list("Hé!".encode())  # é is 2 bytes: 4 answer bytes
    chat = {"input_ids": prompt + answer + [eos], "labels": [X] * len(prompt) + answer + [eos]}
    text = {"input_ids": list(b"abcdef") + [eos], "labels": list(b"abcdef") + [eos]}  # position 0 is never predicted
    rows = datasets.Dataset.from_list([chat, text])
    assert supervised_bytes(rows, tokenizer) == 4 + 5


def test_prompts_are_rebuilt_from_the_last_supervised_run() -> None:
    import datasets

    eos = 9
    two_turns = {"input_ids": [1, 2, 3, 4, eos, 5, 6, 7, eos], "labels": [X, X, 3, 4, eos, X, X, 7, eos]}
    cut = {"input_ids": [1, 2, 3, 4], "labels": [X, X, 3, 4]}  # the answer never reached its end-of-turn
    text = {"input_ids": [1, 2, 3, eos], "labels": [1, 2, 3, eos]}
    assert last_answer(two_turns["input_ids"], two_turns["labels"]) == (7, 9)
    assert last_answer(text["input_ids"], text["labels"]) is None
    rows = datasets.Dataset.from_list([text, cut, two_turns, two_turns])
    prompts, passed_over = task_prompts(rows, [eos], limit=1, ends_turns=True)
    assert prompts == [TaskPrompt([1, 2, 3, 4, eos, 5, 6], [7, eos])]
    assert passed_over == {NO_ANSWER: 1, CUT_ANSWER: 1}
    prompts, _ = task_prompts(rows, [eos], limit=10, ends_turns=False)  # no end-of-turn token: a cut cannot be told
    assert len(prompts) == 3


def test_batched_left_padded_generation_equals_one_prompt_at_a_time() -> None:
    import torch

    from assets.foundation.tiny_llama import build_model, build_tokenizer

    tokenizer, model = build_tokenizer(), build_model()
    model.config.use_cache = True
    stop = [tokenizer.eos_token_id]
    prompts = [TaskPrompt(list(text.encode()), [0] * n) for text, n in (("Hello", 4), ("A longer prompt here", 9), ("Mid size", 6))]
    torch.manual_seed(0)
    batched = greedy_answers(model, prompts, tokenizer.pad_token_id, stop, margin=2, batch_size=3, device="cpu")
    alone = [greedy_answers(model, [p], tokenizer.pad_token_id, stop, margin=2, batch_size=1, device="cpu")[0] for p in prompts]
    assert batched == alone
    assert all(0 < len(a) <= len(p.reference_ids) + 2 for a, p in zip(alone, prompts))  # cut at reference length + margin


def test_task_scores_and_the_task_gate() -> None:
    samples = [{"prompt": "p", "reference": "Reboot the router.", "base": "zzz", "adapter": "Reboot the router."},
               {"prompt": "p", "reference": "Open settings.", "base": "open", "adapter": "Open the settings."}]
    scores = TaskScores(samples=samples)
    numbers = scores.numbers()
    assert numbers["task_examples"] == 2
    assert numbers["task_exact_match_base"] == 0.0 and numbers["task_exact_match_adapter"] == 0.5
    assert numbers["task_rouge_l_base"] == pytest.approx(0.5 * (2 * 1 * 0.5 / 1.5)) and numbers["task_rouge_l_adapter"] == pytest.approx((1 + 0.8) / 2)
    assert task_gate(scores, "exact_match", 0.5)[0] and not task_gate(scores, "exact_match", 0.51)[0]
    passed, why = task_gate(scores, "rouge_l", 0.9)
    assert not passed and why.startswith("rouge_l ")
    skipped = TaskScores(skipped="a text domain")
    assert skipped.numbers() == {"task_examples": 0} and skipped.describe() == "skipped: a text domain"
    assert task_gate(skipped, "rouge_l", 0.0) == (False, "gate_metric rouge_l: no task score to decide on (a text domain)")


def test_gate_settings_refuse_a_margin_the_gate_would_not_read() -> None:
    assert EvaluationConfig().gate_metric == "loss" and EvaluationConfig().task_examples == 32
    assert EvaluationConfig(gate_metric="rouge_l", gate_margin=0.2).gate_margin == 0.2
    with pytest.raises(ValidationError, match="gate_margin applies to a task gate_metric"):
        EvaluationConfig(gate_margin=0.2)
    with pytest.raises(ValidationError, match="min_improvement applies to the loss gate"):
        EvaluationConfig(gate_metric="exact_match", min_improvement=0.1)
    with pytest.raises(ValidationError, match="needs task scores"):
        EvaluationConfig(gate_metric="rouge_l", task_examples=0)
    with pytest.raises(ValidationError):
        EvaluationConfig(gate_metric="bleu")
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValidationError):
            EvaluationConfig(gate_metric="rouge_l", gate_margin=bad)


def test_leaderboard_shows_task_scores_and_a_dash_where_there_are_none() -> None:
    common = {"eval_loss_base": 5.0, "eval_loss_adapter": 2.0, "perplexity_adapter": 7.39, "adapter_beats_base": True}
    rows = [
        {"domain": "support", **common, "bits_per_byte_base": 7.2, "bits_per_byte_adapter": 2.9, "task_rouge_l_base": 0.01,
         "task_rouge_l_adapter": 0.62, "task_exact_match_base": 0.0, "task_exact_match_adapter": 0.25, "gate_metric": "rouge_l"},
        {"domain": "astronomy", **common, "eval_loss_adapter": 3.0},  # a text domain, or an evaluation from before task scores
    ]
    table = leaderboard_markdown(rows).splitlines()
    assert "bits/byte | ROUGE-L | exact match" in table[0]
    assert table[2] == "| support | 5.0000 | 2.0000 | +3.0000 | 7.39 | 7.200 -> 2.900 | 0.010 -> 0.620 | 0.000 -> 0.250 | passed (on rouge_l) |"
    assert table[3].endswith("| - | - | - | passed |")


def test_a_domain_yaml_with_a_margin_but_no_task_metric_names_file_and_line(tmp_path) -> None:
    from assets.settings.domain_file import DomainSettingsError, load_domain_settings

    path = tmp_path / "domain.yaml"
    path.write_text("evaluation:\n  gate_margin: 0.2\n")
    with pytest.raises(DomainSettingsError, match=r"domain.yaml line 1: evaluation: Value error, gate_margin applies to a task gate_metric"):
        load_domain_settings(path)
    path.write_text("evaluation:\n  gate_metric: rouge_l\n  gate_margin: 0.2\n")
    assert load_domain_settings(path) == {"evaluation": {"gate_metric": "rouge_l", "gate_margin": 0.2}}
