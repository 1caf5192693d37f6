"""Deterministic, realistic sample training data for the demo: one landing folder per domain.

Pure standard library (no dagster, no network) so the demo, the tests and a fresh checkout all
seed the same bytes. Each domain exercises one record shape the pipeline accepts:

  support/    chat records in conversations.jsonl (+3 deliberately broken lines at the end)
  cooking/    instruction records, half in recipes.json (array), half in techniques.csv
  astronomy/  text records in notes.jsonl, plus solar_system.txt and telescopes.txt

Texts come from templates filled by `random.Random` choices. Replies keep fixed openings,
numbered steps and closings so a tiny model measurably learns each domain, while names, amounts
and sentence order vary enough that exact duplicates stay rare (they are redrawn, see `_draw`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import random
import unicodedata
import uuid
from pathlib import Path
from typing import Any, Callable

from pipelines import sample_texts as T

SAMPLE_DOMAINS: tuple[str, ...] = ("support", "cooking", "astronomy")
MIN_CHARS, MAX_CHARS = 150, 900
MIN_ROWS = 3  # astronomy needs its two .txt documents plus at least one note
SECOND_EXCHANGE_SHARE = 0.10
_MAX_TRIES = 50

# Appended after the valid lines of support/conversations.jsonl, so valid records are lines
# 1..rows_per_domain and these are the next three: each must land in quarantine, not training.
BROKEN_SUPPORT_LINES: tuple[str, ...] = (
    '{"messages": [{"role": "user", "content": "My Nimbus X2 router keeps dropping the conn',
    json.dumps({"messages": [
        {"role": "user", "content": "Can I get a refund for my Tidy+ subscription?"},
        {"role": "bot", "content": "Sure! Open Settings > Billing and tap 'Request refund'."}]}),
    json.dumps({"messages": []}),
)

Record = dict[str, Any]


def record_chars(record: Record) -> int:
    """Characters of text a record carries (all message contents, or all string fields).

    This is what the 150-900 character bound is about: the text a model sees, not JSON syntax.
    """
    if "messages" in record:
        return sum(len(m["content"]) for m in record["messages"])
    return sum(len(v) for v in record.values() if isinstance(v, str))


def seed_sample_domains(landing_root: Path, rows_per_domain: int = 240, seed: int = 0,
                        overwrite: bool = False) -> dict[str, list[Path]]:
    """Write the sample domains under `landing_root`; return the files per domain.

    `rows_per_domain` counts valid records (support's broken lines come on top; astronomy's two
    .txt documents count). An existing file with different bytes raises FileExistsError unless
    `overwrite`: landing folders hold users' data. Identical files are left untouched, so seeding
    twice is a no-op. All conflicts are checked before anything is written.
    """
    if isinstance(rows_per_domain, bool) or not isinstance(rows_per_domain, int):
        raise TypeError(f"rows_per_domain must be an int, got {type(rows_per_domain).__name__}")
    if rows_per_domain < MIN_ROWS:
        raise ValueError(f"rows_per_domain must be at least {MIN_ROWS}, got {rows_per_domain}")
    root = Path(landing_root)
    builders = {"support": _support_files, "cooking": _cooking_files,
                "astronomy": _astronomy_files}
    plan: dict[str, list[tuple[Path, bytes]]] = {}
    for domain in SAMPLE_DOMAINS:
        # One generator per domain, seeded from (seed, domain): changing one domain's templates
        # leaves the other domains' bytes unchanged.
        rng = random.Random(f"loraline-samples:{seed}:{domain}")
        files = builders[domain](rng, rows_per_domain)
        plan[domain] = [(root / domain / name, data.encode("utf-8")) for name, data in files]
    if not overwrite:
        for path, data in (item for items in plan.values() for item in items):
            if path.exists() and path.read_bytes() != data:
                raise FileExistsError(
                    f"{path} already exists with different content; refusing to overwrite it "
                    "(pass overwrite=True to replace the sample files)")
    written: dict[str, list[Path]] = {}
    for domain, items in plan.items():
        for path, data in items:
            if not (path.is_file() and path.read_bytes() == data):
                _write_atomic(path, data)
        written[domain] = [path for path, _ in items]
    return written


def _write_atomic(path: Path, data: bytes) -> None:
    """Write beside the target under a hidden name, then rename: readers never see half a file.

    The temp name starts with "." and ends in ".tmp", both of which the landing readers skip.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "xb") as handle:  # "x": never clobber someone else's temp file
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _draw(count: int, make: Callable[[int], Record]) -> list[Record]:
    """`count` records from `make(index)`, redrawing duplicates and out-of-bounds lengths.

    Redraws use the same generator, so the output stays deterministic. After _MAX_TRIES a
    duplicate is accepted (the template space is finite), a length violation is a template bug.
    """
    records: list[Record] = []
    seen: set[str] = set()  # membership only; never iterated, so hash order cannot leak out
    for index in range(count):
        for _ in range(_MAX_TRIES):
            record = make(index)
            key = json.dumps(record, ensure_ascii=False, sort_keys=True)
            fits = MIN_CHARS <= record_chars(record) <= MAX_CHARS
            if fits and key not in seen:
                break
        if not fits:
            raise RuntimeError(f"sample template produced {record_chars(record)} characters, "
                               f"outside {MIN_CHARS}-{MAX_CHARS}: {key[:120]}")
        seen.add(key)
        records.append(record)
    return records


def _jsonl(records: list[Record]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _ascii_slug(text: str) -> str:
    # Email local parts stay ASCII ("zoë" -> "zoe") even though names keep their accents.
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


# --- support: chat -------------------------------------------------------------------------------

def _support_vars(rng: random.Random, kind: str) -> dict[str, Any]:
    first, last = rng.choice(T.FIRST_NAMES), rng.choice(T.LAST_NAMES)
    plan, new_plan = rng.sample(T.PLANS, 2)
    return {"first": first, "last": last, "product": rng.choice(T.PRODUCTS[kind]),
            "email": f"{_ascii_slug(first)}.{_ascii_slug(last)}{rng.randint(1, 99)}@example.com",
            "device": rng.choice(T.DEVICES), "room": rng.choice(T.ROOMS),
            "amount": rng.choice(T.CURRENCIES) + rng.choice(T.PRICES),
            "order": f"BW-{rng.randint(10000, 99999)}", "days": rng.randint(2, 9),
            "date": f"{rng.choice(T.MONTHS)} {rng.randint(1, 28)}", "mbps": rng.randint(2, 25),
            "hour": rng.randint(6, 11), "minutes": rng.randint(2, 6), "plan": plan,
            "new_plan": new_plan}


def _support_record(rng: random.Random, second_exchange: bool) -> Record:
    topic = rng.choice(T.SUPPORT_TOPICS)
    v = _support_vars(rng, topic["kind"])
    greeting = rng.choice(T.GREETINGS).format(**v)
    ask = rng.choice(topic["asks"]).format(**v)
    # Two-exchange conversations get two steps in the first reply to stay under MAX_CHARS.
    picked = sorted(rng.sample(range(len(topic["steps"])), 2 if second_exchange else 3))
    steps = [topic["steps"][i].format(**v) for i in picked]
    reply = "\n".join([T.OPENING.format(issue=topic["issue"], **v), T.STEPS_INTRO,
                       *(f"{n}. {s}" for n, s in enumerate(steps, 1)), T.CLOSING])
    messages = [{"role": "system", "content": T.SYSTEM_PROMPT.format(**v)},
                {"role": "user", "content": f"{greeting} {ask}".strip()},
                {"role": "assistant", "content": reply}]
    if second_exchange:
        question, follow_steps = rng.choice(T.FOLLOWUPS[topic["kind"]])
        follow = "\n".join([T.FOLLOWUP_OPENING.format(**v),
                            *(f"{n}. {s.format(**v)}" for n, s in enumerate(follow_steps, 1)),
                            T.CLOSING])
        messages += [{"role": "user", "content": question.format(**v)},
                     {"role": "assistant", "content": follow}]
    return {"messages": messages}


def _support_files(rng: random.Random, rows: int) -> list[tuple[str, str]]:
    # Exactly round(10%) of conversations get a second exchange, at seeded positions.
    seconds = set(rng.sample(range(rows), round(rows * SECOND_EXCHANGE_SHARE)))
    records = _draw(rows, lambda i: _support_record(rng, i in seconds))
    broken = "".join(line + "\n" for line in BROKEN_SUPPORT_LINES)
    return [("conversations.jsonl", _jsonl(records) + broken)]


# --- cooking: instruction ------------------------------------------------------------------------

_FRACTIONS = {0.25: "¼", 0.5: "½", 0.75: "¾"}


def _amount(value: float) -> str:
    """1.5 -> "1½", 0.25 -> "¼", 300.0 -> "300": how recipes write quantities."""
    whole, part = int(value), round(value - int(value), 2)
    return (str(whole) if whole or not part else "") + _FRACTIONS.get(part, "")


def _quarters(value: float) -> float:
    return max(0.25, round(value * 4) / 4)


def _recipe(rng: random.Random, with_input: bool) -> Record:
    dish, minutes, ingredients, steps, oven = rng.choice(T.DISHES)
    servings = rng.randint(2, 8)
    parts = []
    for amount, unit, item in ingredients:
        total = amount * servings
        total = _quarters(total) if total < 10 else round(total / 5) * 5
        item += "s" if not unit and total > 1 and not item.endswith("s") else ""
        parts.append(" ".join(x for x in (_amount(total), unit, item) if x))
    numbered = [f"{n}. {s}" for n, s in enumerate(steps, 1)]
    lines = [f"Ingredients ({servings} servings): " + ", ".join(parts) + ".", "Steps:", *numbered]
    if oven:
        lines.insert(1, f"Oven: {oven} °C ({oven - 20} °C fan).")
    lines.append(f"Time: about {minutes} minutes. Tip: {rng.choice(T.COOKING_TIPS)}")
    extra = rng.choice(T.RECIPE_INPUTS).format(n=servings, mins=minutes + rng.randint(0, 20))
    return {"instruction": rng.choice(T.RECIPE_ASKS).format(dish=dish),
            "input": extra if with_input else "", "output": "\n".join(lines)}


def _technique_fields(rng: random.Random, kind: str) -> dict[str, Any]:
    """Values for T.TECHNIQUES[kind]; the arithmetic is real so the answers are learnable."""
    if kind == "eggs":
        (done, base, result), (size, delta) = rng.choice(T.EGG_DONENESS), rng.choice(T.EGG_SIZES)
        count, fridge = rng.randint(1, 12), rng.random() < 0.5
        return {"count": count, "size": size, "eggs": "eggs" if count > 1 else "egg",
                "done": done, "result": result,
                "mins": _amount(base + delta + (0.5 if fridge else 0)),
                "note": T.EGG_NOTES[fridge]}
    if kind == "cups":
        item, per_cup = rng.choice(T.CUP_GRAMS)
        grams = rng.randrange(50, 1001, 10)
        return {"item": item, "grams": grams, "per_cup": per_cup,
                "exact": f"{grams / per_cup:.2f}", "cups": _amount(_quarters(grams / per_cup))}
    if kind == "oven":
        fahrenheit = rng.randrange(300, 476, 25)
        celsius = (fahrenheit - 32) * 5 / 9
        return {"f": fahrenheit, "minus": fahrenheit - 32, "exact": f"{celsius:.1f}",
                "c": round(celsius), "fan": round(celsius) - 20}
    if kind == "roast":
        veg, base, cut = rng.choice(T.ROAST_VEG)
        temp = rng.choice((180, 190, 200, 210, 220))
        return {"veg": veg, "cut": cut, "temp": temp, "mins": max(10, round(base * 200 / temp))}
    rice, ratio, simmer, rest = rng.choice(T.RICE)
    grams = rng.randrange(75, 601, 25)
    return {"rice": rice, "grams": grams, "water": round(grams * ratio / 10) * 10,
            "simmer": simmer, "rest": rest}


def _technique(rng: random.Random, with_input: bool) -> Record:
    kind = rng.choice(tuple(T.TECHNIQUES))
    fields = _technique_fields(rng, kind)
    asks, answer, steps, note = T.TECHNIQUES[kind]
    numbered = "\n".join(f"{n}. {s}" for n, s in enumerate(steps, 1))
    output = f"Short answer: {answer}.\nSteps:\n{numbered}\nNote: {note}".format(**fields)
    return {"instruction": rng.choice(asks).format(**fields),
            "input": rng.choice(T.TECHNIQUE_INPUTS) if with_input else "", "output": output}


def _cooking_files(rng: random.Random, rows: int) -> list[tuple[str, str]]:
    n_json = (rows + 1) // 2
    with_input = set(rng.sample(range(rows), rows // 2))  # exactly half carry an input
    records = _draw(rows, lambda i: (_recipe if i < n_json else _technique)(rng, i in with_input))
    buffer = io.StringIO()
    # lineterminator "\n" keeps the bytes identical on every OS; outputs with commas and newlines
    # are quoted by the csv module (QUOTE_MINIMAL).
    writer = csv.DictWriter(buffer, fieldnames=["instruction", "input", "output"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(records[n_json:])
    return [("recipes.json", json.dumps(records[:n_json], ensure_ascii=False, indent=2) + "\n"),
            ("techniques.csv", buffer.getvalue())]


# --- astronomy: text -----------------------------------------------------------------------------

def _note_fields(rng: random.Random, kind: str) -> dict[str, Any]:
    """Values for one entity's templates in T.NOTE_TEMPLATES[kind]."""
    scope = rng.choice(T.APERTURES_MM)
    if kind == "planet":
        name, order, moons, au, diameter, year, feature, view, mission = rng.choice(T.PLANETS)
        return {"name": name, "ordinal": T.ORDINALS[order - 1], "au": au, "year": year,
                "moons": _moons_phrase(moons), "diameter": f"{diameter:,}", "feature": feature,
                "ratio": f"{diameter / 12742:.2f}", "view": view, "mission": mission,
                "scope": scope}
    if kind == "moon":
        name, parent, diameter, feature, found = rng.choice(T.MOONS)
        return {"name": name, "Name": name[0].upper() + name[1:], "parent": parent,
                "diameter": f"{diameter:,}", "feature": feature,
                "found": found[0].upper() + found[1:],
                "versus": "larger" if diameter > 4879 else "smaller"}  # Mercury: 4,879 km
    if kind == "star":
        name, constellation, distance, star_type, kelvin, feature = rng.choice(T.STARS)
        return {"name": name, "constellation": constellation, "distance": f"{distance:g}",
                "type": star_type, "kelvin": f"{kelvin:,}", "feature": feature, "scope": scope}
    name, year, aperture, scope_type, where, feature = rng.choice(T.TELESCOPES)
    # Light grasp against a 7 mm dark-adapted pupil; meaningless for radio and X-ray optics.
    optical = "radio" not in scope_type and "X-ray" not in scope_type
    return {"name": name, "year": year, "aperture": f"{aperture:g}", "type": scope_type,
            "a": "an" if scope_type[0] in "aeiouX" else "a", "where": where,
            "feature": feature, "gain": f"{float(f'{(aperture / 0.007) ** 2:.2g}'):,.0f}"
            if optical else ""}


def _note(rng: random.Random) -> Record:
    # An intro sentence, then 3-4 of the entity's facts in random order: shared sentence shapes
    # make the domain learnable, the sampling keeps exact duplicates rare.
    kind = rng.choice(tuple(T.NOTE_TEMPLATES))
    fields = _note_fields(rng, kind)
    intros, facts = T.NOTE_TEMPLATES[kind]
    usable = [t for t in facts if "{gain}" not in t or fields["gain"]]
    chosen = rng.sample(usable, rng.randint(3, 4))
    return {"text": " ".join(t.format(**fields) for t in [rng.choice(intros), *chosen])}


def _moons_phrase(count: int) -> str:
    return {0: "no known moons", 1: "one natural satellite, the Moon",
            2: "two small moons, Phobos and Deimos"}.get(count, f"about {count} known moons")


def _documents(rng: random.Random) -> list[tuple[str, str]]:
    planets = rng.sample(T.PLANETS, 2)
    giants = rng.sample([p for p in T.PLANETS if p[2] > 10], 2)
    solar = T.SOLAR_SYSTEM_DOC.format(
        spotlight=" ".join(f"{p[0]}, the {T.ORDINALS[p[1] - 1]} planet, is {p[6]}."
                           for p in planets),
        moons=f"{giants[0][0]} has {_moons_phrase(giants[0][2])} and {giants[1][0]} "
              f"{_moons_phrase(giants[1][2])}")
    scopes = T.TELESCOPES_DOC.format(
        spotlight=" ".join(f"The {t[0]} ({t[1]}) {t[5]}." for t in rng.sample(T.TELESCOPES, 2)))
    return [("solar_system.txt", solar), ("telescopes.txt", scopes)]


def _astronomy_files(rng: random.Random, rows: int) -> list[tuple[str, str]]:
    notes = _draw(rows - 2, lambda _: _note(rng))
    docs = _documents(rng)
    for name, doc in docs:  # the documents count as records, so they keep the same bound
        if not MIN_CHARS <= len(doc) <= MAX_CHARS:
            raise RuntimeError(f"{name} template produced {len(doc)} characters")
    return [("notes.jsonl", _jsonl(notes)), *docs]
