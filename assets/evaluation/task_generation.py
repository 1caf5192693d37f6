"""Held-out prompts answered by the base and by the adapter, for the task scores in task_metrics.py.

The tokenized eval split keeps tokens and labels, not the source messages, so a prompt is rebuilt
from the labels: the last supervised run of an example is its last answer (with its end-of-turn
token), and everything before that run is the prompt, exactly as the model saw it in training
(template, system turn, earlier exchanges). Text examples are supervised from their first token, so
they have no prompt and are not scored.

Pure: no dagster; torch is imported inside the functions.
"""

from dataclasses import dataclass
from typing import Any

from assets.evaluation.task_metrics import TaskScores
from assets.models.batches import IGNORE_INDEX
from assets.settings.evaluation import EvaluationConfig

TEXT_ONLY = "no eval example has a prompt and an answer (a text domain): exact match and ROUGE-L need instruction or chat records"
CUT_ANSWER = "eval examples whose last answer was cut at max_seq_len"
NO_ANSWER = "eval examples without a prompt (text)"


@dataclass(frozen=True)
class TaskPrompt:
    prompt_ids: list[int]
    reference_ids: list[int]  # the last answer's tokens, its end-of-turn token included


def last_answer(input_ids: list[int], labels: list[int]) -> tuple[int, int] | None:
    """(start, end) of the last run of supervised labels, or None when it starts the example (no prompt)."""
    end = len(labels)
    while end > 0 and labels[end - 1] == IGNORE_INDEX:
        end -= 1
    start = end
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    return None if start == 0 or start == end else (start, end)


def task_prompts(eval_dataset: Any, stop_ids: list[int], limit: int, ends_turns: bool) -> tuple[list[TaskPrompt], dict[str, int]]:
    """The first `limit` eval examples that have a prompt and a whole last answer, and how many were
    passed over per reason. With `ends_turns` (the template closes answers with an end-of-turn or EOS
    token), an answer not ending in one was cut by max_seq_len and is no fair reference."""
    prompts: list[TaskPrompt] = []
    passed_over = {NO_ANSWER: 0, CUT_ANSWER: 0}
    for example in eval_dataset.select_columns(["input_ids", "labels"]):
        if len(prompts) == limit:
            break
        ids = example["input_ids"]
        span = last_answer(ids, example["labels"])
        if span is None:
            passed_over[NO_ANSWER] += 1
        elif ends_turns and ids[span[1] - 1] not in stop_ids:
            passed_over[CUT_ANSWER] += 1
        else:
            prompts.append(TaskPrompt(ids[: span[0]], ids[span[0] : span[1]]))
    return prompts, passed_over


def greedy_answers(model: Any, prompts: list[TaskPrompt], pad_id: int, stop_ids: list[int], margin: int, batch_size: int,
                   device: str) -> list[list[int]]:
    """Greedy continuations of every prompt, batched with left padding; each cut at its first stop
    token and at its reference length + `margin` tokens. Returned in the order of `prompts`."""
    import torch

    limits = [len(p.reference_ids) + margin for p in prompts]
    # Batches of similar length waste less on padding and on generating past a short answer's limit.
    order = sorted(range(len(prompts)), key=lambda i: (limits[i], len(prompts[i].prompt_ids)))
    answers: list[list[int]] = [[] for _ in prompts]
    model.eval()
    for at in range(0, len(order), batch_size):
        chosen = order[at : at + batch_size]
        width = max(len(prompts[i].prompt_ids) for i in chosen)
        ids = torch.full((len(chosen), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, i in enumerate(chosen):
            prompt = prompts[i].prompt_ids
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        with torch.no_grad():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                                 max_new_tokens=max(limits[i] for i in chosen), pad_token_id=pad_id, eos_token_id=stop_ids)
        for row, i in enumerate(chosen):
            new = out[row, width:].tolist()[: limits[i]]
            cut = next((t for t, token in enumerate(new) if token in stop_ids), len(new))
            answers[i] = new[:cut]
    return answers


def score_tasks(model: Any, tokenizer: Any, eval_dataset: Any, config: EvaluationConfig, device: str) -> TaskScores:
    """Base (adapter off) and adapter answers to the held-out prompts, with their references."""
    from assets.models.chat_format import chat_format

    if config.task_examples == 0:
        return TaskScores(skipped="task_examples is 0")
    fmt = chat_format(tokenizer)
    stop = fmt.stop_token_ids(tokenizer.eos_token_id)
    prompts, passed_over = task_prompts(eval_dataset, stop, config.task_examples, ends_turns=fmt.end_of_turn_id is not None)
    if not prompts:
        return TaskScores(skipped=TEXT_ONLY if not passed_over[CUT_ANSWER] else f"all {passed_over[CUT_ANSWER]} {CUT_ANSWER}",
                          not_scored=passed_over)
    args = (prompts, tokenizer.pad_token_id, stop, config.task_length_margin, config.task_batch_size, device)
    with model.disable_adapter():
        base = greedy_answers(model, *args)
    adapter = greedy_answers(model, *args)

    def text(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    samples = [
        {"prompt": tokenizer.decode(p.prompt_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
         "reference": text(p.reference_ids), "base": text(b), "adapter": text(a)}
        for p, b, a in zip(prompts, base, adapter)
    ]
    return TaskScores(samples=samples, not_scored=passed_over)


def supervised_bytes(eval_dataset: Any, tokenizer: Any) -> int:
    """UTF-8 bytes of the text the scored tokens spell: every supervised label after the first
    position (nothing predicts position 0), decoded per contiguous run, special tokens as 0 bytes."""
    total = 0
    for example in eval_dataset.select_columns(["input_ids", "labels"]):
        run: list[int] = []
        for token, label in zip(example["input_ids"][1:], example["labels"][1:]):
            if label != IGNORE_INDEX:
                run.append(token)
            elif run:
                total, run = total + _utf8_len(tokenizer, run), []
        total += _utf8_len(tokenizer, run) if run else 0
    return total


def _utf8_len(tokenizer: Any, ids: list[int]) -> int:
    return len(tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).encode("utf-8"))
