"""Toy tokenized examples for the training tests: byte-level ids of the built-in tiny model, a
skewed length mix, the first quarter of each a prompt."""

import random

from assets.models.batches import IGNORE_INDEX


def toy_examples(n: int, seed: int = 0, longest: int = 96) -> dict[str, list]:
    """`n` byte-level examples with a skewed length mix (many short, few long); the first quarter
    of each is a prompt (IGNORE_INDEX labels), the rest is supervised."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"input_ids": [], "labels": [], "length": []}
    for _ in range(n):
        length = min(longest, 8 + int(rng.expovariate(1 / 24)))
        ids = [256] + [rng.randrange(97, 123) for _ in range(length - 2)] + [257]
        prompt = max(1, length // 4)
        rows["input_ids"].append(ids)
        rows["labels"].append([IGNORE_INDEX] * prompt + ids[prompt:])
        rows["length"].append(length)
    return rows


def toy_dataset(n: int, seed: int = 0):
    import datasets

    return datasets.Dataset.from_dict(toy_examples(n, seed))
