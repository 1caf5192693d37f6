"""Tests for the deterministic demo data generator (pure stdlib, no dagster)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pipelines.samples import BROKEN_SUPPORT_LINES, MAX_CHARS, MIN_CHARS, SAMPLE_DOMAINS, record_chars, seed_sample_domains

ROWS = 240
FILES = {"support": ["conversations.jsonl"], "cooking": ["recipes.json", "techniques.csv"],
         "astronomy": ["notes.jsonl", "solar_system.txt", "telescopes.txt"]}


def _support(root: Path) -> tuple[list[dict], list[str]]:
    lines = (root / "support" / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    valid = len(lines) - len(BROKEN_SUPPORT_LINES)
    return [json.loads(line) for line in lines[:valid]], lines[valid:]


def _cooking(root: Path) -> tuple[list[dict], list[dict]]:
    array = json.loads((root / "cooking" / "recipes.json").read_text(encoding="utf-8"))
    with open(root / "cooking" / "techniques.csv", newline="", encoding="utf-8") as handle:
        return array, list(csv.DictReader(handle))


def _notes(root: Path) -> list[dict]:
    text = (root / "astronomy" / "notes.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _records(root: Path) -> dict[str, list[dict]]:
    array, rows = _cooking(root)
    return {"support": _support(root)[0], "cooking": array + rows, "astronomy": _notes(root)}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, dict[str, list[Path]]]:
    root = tmp_path_factory.mktemp("landing-ü")  # non-ASCII path on purpose
    return root, seed_sample_domains(root)


def test_writes_one_folder_per_domain_and_returns_its_files(seeded):
    root, written = seeded
    assert SAMPLE_DOMAINS == ("support", "cooking", "astronomy")
    assert list(written) == list(SAMPLE_DOMAINS)
    for domain in SAMPLE_DOMAINS:
        assert [p.name for p in written[domain]] == FILES[domain]
        assert all(p.parent == root / domain and p.is_file() for p in written[domain])
    # Exactly the listed files: no temp files (hidden, .tmp) left behind by the atomic writes.
    assert sorted(_tree(root)) == sorted(f"{d}/{n}" for d, names in FILES.items() for n in names)


def test_support_is_chat_with_three_broken_lines_at_the_end(seeded):
    root, _ = seeded
    records, broken = _support(root)
    assert len(records) == ROWS
    seconds = 0
    for record in records:
        roles = [m["role"] for m in record["messages"]]
        assert roles in (["system", "user", "assistant"],
                         ["system", "user", "assistant", "user", "assistant"])
        seconds += len(roles) == 5
        assert all(isinstance(m["content"], str) and m["content"].strip()
                   for m in record["messages"])
        # The learnable pattern: fixed opening, numbered steps, fixed closing.
        first, *rest = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
        assert first.startswith("Thanks for contacting Brightwave Support, ")
        assert "\nHere's what to do:\n1. " in first and "\n2. " in first
        assert all(r.startswith("Happy to help with that too, ") and "\n1. " in r for r in rest)
        assert all(r.endswith("Have a great day!") for r in [first, *rest])
    assert 0.05 <= seconds / ROWS <= 0.15
    assert len(broken) == 3
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken[0])
    assert [m["role"] for m in json.loads(broken[1])["messages"]] == ["user", "bot"]
    assert json.loads(broken[2]) == {"messages": []}


def test_cooking_is_instructions_split_between_json_and_csv(seeded):
    root, _ = seeded
    array, rows = _cooking(root)
    assert len(array) + len(rows) == ROWS
    assert len(array) == ROWS // 2 and len(rows) == ROWS // 2
    raw_csv = (root / "cooking" / "techniques.csv").read_text(encoding="utf-8")
    assert raw_csv.startswith("instruction,input,output\n")
    for record in array + rows:
        assert set(record) == {"instruction", "input", "output"}
        assert "\nSteps:\n1. " in record["output"]
    assert all(r["output"].startswith("Ingredients (") for r in array)
    # Quoting is exercised: outputs carry commas and newlines and still parse back intact.
    assert any("," in r["output"] and "\n" in r["output"] for r in rows)
    empty_inputs = sum(not r["input"] for r in array + rows)
    assert 0.4 <= empty_inputs / ROWS <= 0.6


def test_astronomy_is_text_notes_plus_two_documents(seeded):
    root, _ = seeded
    notes = _notes(root)
    assert len(notes) == ROWS - 2  # the two .txt documents count as rows
    assert all(list(n) == ["text"] for n in notes)
    for name in ("solar_system.txt", "telescopes.txt"):
        doc = (root / "astronomy" / name).read_text(encoding="utf-8")
        assert doc.count("\n\n") >= 3, "a multi-paragraph document"
        assert MIN_CHARS <= len(doc) <= MAX_CHARS


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_record_lengths_and_duplicate_ratio(tmp_path, seed):
    seed_sample_domains(tmp_path, seed=seed)
    for domain, records in _records(tmp_path).items():
        lengths = [record_chars(r) for r in records]
        assert MIN_CHARS <= min(lengths) and max(lengths) <= MAX_CHARS, domain
        keys = [json.dumps(r, sort_keys=True) for r in records]
        assert (len(keys) - len(set(keys))) / len(keys) <= 0.02, domain


def test_utf8_text_is_written_unescaped(seeded):
    root, _ = seeded
    for domain in SAMPLE_DOMAINS:
        data = b"".join(p.read_bytes() for p in sorted((root / domain).iterdir()))
        text = data.decode("utf-8")
        assert "\\u00" not in text  # ensure_ascii=False
        assert any(ord(c) > 127 for c in text), domain
    assert "°C" in (root / "cooking" / "techniques.csv").read_text(encoding="utf-8")


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path, seeded):
    root, _ = seeded
    again = tmp_path / "again"
    seed_sample_domains(again)
    assert _tree(again) == _tree(root)
    other = tmp_path / "other"
    seed_sample_domains(other, seed=1)
    for domain in SAMPLE_DOMAINS:
        main_files = {k: v for k, v in _tree(root).items() if k.startswith(domain)}
        assert {k: v for k, v in _tree(other).items() if k.startswith(domain)} != main_files


@pytest.mark.parametrize("rows", [3, 7, 30])
def test_small_row_counts_are_exact(tmp_path, rows):
    seed_sample_domains(tmp_path, rows_per_domain=rows)
    records = _records(tmp_path)
    assert len(records["support"]) == rows
    assert len(records["cooking"]) == rows
    assert len(records["astronomy"]) == rows - 2
    assert len(_support(tmp_path)[1]) == 3


def test_rejects_too_few_rows(tmp_path):
    with pytest.raises(ValueError):
        seed_sample_domains(tmp_path, rows_per_domain=2)
    assert not any(tmp_path.iterdir())


def test_reseeding_is_idempotent_and_leaves_files_untouched(tmp_path):
    first = seed_sample_domains(tmp_path, rows_per_domain=20)
    stamps = {p: p.stat().st_mtime_ns for paths in first.values() for p in paths}
    before = _tree(tmp_path)
    assert seed_sample_domains(tmp_path, rows_per_domain=20) == first
    assert _tree(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_refuses_to_overwrite_a_different_file(tmp_path):
    target = tmp_path / "cooking" / "recipes.json"
    target.parent.mkdir()
    target.write_text('[{"instruction": "mine", "output": "keep me"}]\n', encoding="utf-8")
    with pytest.raises(FileExistsError, match="recipes.json"):
        seed_sample_domains(tmp_path, rows_per_domain=10)
    assert "keep me" in target.read_text(encoding="utf-8")
    # Conflicts are checked before any write: no domain was half-seeded.
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "cooking", "cooking/recipes.json"]


def test_overwrite_replaces_a_different_file(tmp_path):
    target = tmp_path / "support" / "conversations.jsonl"
    target.parent.mkdir()
    target.write_text("old\n", encoding="utf-8")
    written = seed_sample_domains(tmp_path, rows_per_domain=10, overwrite=True)
    assert target in written["support"]
    assert len(_support(tmp_path)[0]) == 10
    fresh = tmp_path / "fresh"
    seed_sample_domains(fresh, rows_per_domain=10)
    assert target.read_bytes() == (fresh / "support" / "conversations.jsonl").read_bytes()
