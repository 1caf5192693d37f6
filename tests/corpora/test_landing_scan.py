"""The landing sensor's decisions, on real folders: what is new, changed, unsettled or gone."""

import json
import os
import time
from pathlib import Path

from assets.corpora.landing_scan import landing_fingerprint, plan_landing, scan_domain


def land(root: Path, domain: str, name: str, text: str, age_s: float = 3600) -> Path:
    path = root / domain / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def doc(i: int) -> str:
    return json.dumps({"text": f"document number {i} with enough words to be kept"}) + "\n"


def tick(root: Path, cursor: dict, registered: set, settle: float = 30, ingested: dict | None = None):
    domains = sorted(p.name for p in root.iterdir() if p.is_dir())
    now = time.time()
    scans = [scan_domain(d, root / d, settle, now, cursor.get(d)) for d in domains]
    return plan_landing(scans, [], cursor, registered, ingested or {})


def test_new_domain_is_registered_and_run_once(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    plan = tick(tmp_path, {}, set())
    assert plan.new_domains == ["news"] and list(plan.runs) == ["news"]
    again = tick(tmp_path, plan.cursor, {"news"})
    assert again.new_domains == [] and again.runs == {} and again.cursor == plan.cursor


def test_changed_file_retrains_only_that_domain_with_a_new_content_key(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    land(tmp_path, "legal", "a.jsonl", doc(2))
    first = tick(tmp_path, {}, set())
    land(tmp_path, "news", "b.jsonl", doc(3))
    second = tick(tmp_path, first.cursor, {"news", "legal"})
    assert list(second.runs) == ["news"] and second.runs["news"] != first.runs["news"]


def test_touching_a_file_without_changing_it_runs_nothing(tmp_path: Path) -> None:
    path = land(tmp_path, "news", "a.jsonl", doc(1))
    first = tick(tmp_path, {}, set())
    os.utime(path, (time.time() - 100, time.time() - 100))  # new mtime, same bytes
    second = tick(tmp_path, first.cursor, {"news"})
    assert second.runs == {}


def test_unsettled_and_temporary_files_hold_the_domain_back(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    first = tick(tmp_path, {}, set())
    land(tmp_path, "news", ".b.jsonl.tmp", doc(2), age_s=0)  # a producer's temporary name: ignored
    assert tick(tmp_path, first.cursor, {"news"}).runs == {}
    land(tmp_path, "news", "c.jsonl", doc(3), age_s=1)  # still being written
    plan = tick(tmp_path, first.cursor, {"news"})
    assert plan.runs == {} and any("waiting for 1 file(s) to settle: c.jsonl" in n for n in plan.notes)
    assert plan.cursor == first.cursor  # the last settled state is kept
    settled = tick(tmp_path, first.cursor, {"news"}, settle=0)
    assert list(settled.runs) == ["news"]


def test_empty_new_folder_waits_for_data(tmp_path: Path) -> None:
    (tmp_path / "news").mkdir()
    plan = tick(tmp_path, {}, set())
    assert plan.new_domains == [] and plan.runs == {}


def test_domain_yaml_changes_count_as_changes(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    first = tick(tmp_path, {}, set())
    land(tmp_path, "news", "domain.yaml", "training: {lora_rank: 4}\n")
    assert list(tick(tmp_path, first.cursor, {"news"}).runs) == ["news"]


def test_deleted_folder_is_reported_and_nothing_runs(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    first = tick(tmp_path, {}, set())
    (tmp_path / "news" / "a.jsonl").unlink()
    (tmp_path / "news").rmdir()
    plan = tick(tmp_path, first.cursor, {"news"})
    assert plan.runs == {} and plan.new_domains == [] and "news" not in plan.cursor
    assert any("gone" in note and "kept" in note for note in plan.notes)


def test_first_look_at_an_ingested_domain_runs_nothing(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    fingerprint = landing_fingerprint(tmp_path / "news")
    assert tick(tmp_path, {}, {"news"}, ingested={"news": fingerprint}).runs == {}
    assert list(tick(tmp_path, {}, {"news"}, ingested={"news": "something-else"}).runs) == ["news"]


def test_invalid_folder_names_are_noted(tmp_path: Path) -> None:
    plan = plan_landing([], ["Bad Name"], {}, set(), {})
    assert plan.runs == {} and "'Bad Name'" in plan.notes[0]
