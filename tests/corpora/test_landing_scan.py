"""The landing sensor's decisions, on real folders: what is new, changed, unsettled, gone, still
hashing, unreadable, failed and retried (the instance's runs are given as RunHistory values here;
tests/pipelines/test_sensor.py reads them from a real Dagster instance)."""

import json
import os
import time
from pathlib import Path

import pytest
from hostile_paths import bury_unlistable_folder

from assets.corpora.landing_digests import DigestCache, HashBudget, ScanError, domain_digests
from assets.corpora.landing_scan import (
    DONE,
    GAVE_UP,
    PENDING,
    RunHistory,
    decide,
    landing_fingerprint,
    needs_history,
    plan_landing,
    scan_landing,
    stat_landing_files,
)

MiB = 1024 * 1024
NO_RUNS = RunHistory([], [], None, None)


def land(root: Path, domain: str, name: str, text: str, age_s: float = 3600) -> Path:
    path = root / domain / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def doc(i: int) -> str:
    return json.dumps({"text": f"document number {i} with enough words to be kept"}) + "\n"


def tick(root: Path, cursor: dict, registered: set, settle: float = 30, history: dict | None = None,
         cache: DigestCache | None = None, budget: HashBudget | None = None, max_retries: int = 3):
    domains = sorted(p.name for p in root.iterdir() if p.is_dir())
    scans = scan_landing({d: root / d for d in domains}, settle, time.time(), cache or DigestCache(None), budget or HashBudget(1 << 40))
    asked = {s.domain: (history or {}).get(s.domain, NO_RUNS) for s in scans if needs_history(s, cursor.get(s.domain))}
    return plan_landing(scans, asked, cursor, registered, max_retries)


def finished(plan, ok: bool = True) -> dict[str, RunHistory]:
    """What the instance says once the plan's runs have finished (True: succeeded)."""
    return {d: RunHistory([], [ok], attempt, None) for d, (_, attempt) in plan.runs.items()}


def test_new_domain_is_registered_and_run_once(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    plan = tick(tmp_path, {}, set())
    assert plan.new_domains == ["news"] and list(plan.runs) == ["news"] and plan.runs["news"][1] == 0
    running = tick(tmp_path, plan.cursor, {"news"}, history={"news": RunHistory(["run-1"], [], 0, None)})
    assert running.runs == {} and "queued or running" in running.notes[0]
    done = tick(tmp_path, running.cursor, {"news"}, history=finished(plan))
    assert done.runs == {} and done.cursor["news"][1] == DONE
    # Done with this data: the instance is not asked again (no history given, none needed).
    assert tick(tmp_path, done.cursor, {"news"}, history={}).cursor == done.cursor


def test_changed_file_retrains_only_that_domain_with_a_new_content_key(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    land(tmp_path, "legal", "a.jsonl", doc(2))
    first = tick(tmp_path, {}, set())
    done = tick(tmp_path, first.cursor, {"news", "legal"}, history=finished(first))
    land(tmp_path, "news", "b.jsonl", doc(3))
    second = tick(tmp_path, done.cursor, {"news", "legal"}, history={"news": RunHistory([], [], None, first.runs["news"][0])})
    assert list(second.runs) == ["news"] and second.runs["news"][0] != first.runs["news"][0]


def test_touching_a_file_without_changing_it_runs_nothing(tmp_path: Path) -> None:
    path = land(tmp_path, "news", "a.jsonl", doc(1))
    cache = DigestCache(tmp_path.parent / f"{tmp_path.name}-cache")
    first = tick(tmp_path, {}, set(), cache=cache)
    done = tick(tmp_path, first.cursor, {"news"}, history=finished(first), cache=cache)
    os.utime(path, (time.time() - 100, time.time() - 100))  # new mtime, same bytes: hashed again, same key
    budget = HashBudget(1 << 40)
    second = tick(tmp_path, done.cursor, {"news"}, history={}, cache=cache, budget=budget)
    assert second.runs == {} and budget.spent == path.stat().st_size


def test_unsettled_and_temporary_files_hold_the_domain_back(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    first = tick(tmp_path, {}, set())
    first = tick(tmp_path, first.cursor, {"news"}, history=finished(first))
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
    done = tick(tmp_path, first.cursor, {"news"}, history=finished(first))
    land(tmp_path, "news", "domain.yaml", "training: {lora_rank: 4}\n")
    assert list(tick(tmp_path, done.cursor, {"news"}).runs) == ["news"]


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
    plan = tick(tmp_path, {}, {"news"}, history={"news": RunHistory([], [], None, fingerprint)})
    assert plan.runs == {} and plan.cursor == {"news": [fingerprint, DONE]}
    assert list(tick(tmp_path, {}, {"news"}, history={"news": RunHistory([], [], None, "something-else")}).runs) == ["news"]


def test_an_older_cursor_is_checked_against_the_instance_not_trusted(tmp_path: Path) -> None:
    from assets.corpora.landing_scan import read_cursor
    land(tmp_path, "news", "a.jsonl", doc(1))
    fingerprint = landing_fingerprint(tmp_path / "news")
    cursor = read_cursor({"news": ["old-signature", fingerprint]})
    assert cursor == {"news": [fingerprint, PENDING]}
    assert tick(tmp_path, cursor, {"news"}, history={"news": RunHistory([], [], None, fingerprint)}).runs == {}


def test_invalid_and_refused_folder_names_are_logged_and_refused_ones_keep_their_cursor() -> None:
    plan = plan_landing([], {}, {"evil": ["f" * 20, DONE]}, {"evil"}, 3, ["Bad Name"], [("evil", "domain 'evil': ... is a symlink")])
    assert plan.runs == {} and "'Bad Name'" in plan.notes[0]
    assert plan.warnings == ["skipping folder 'evil': domain 'evil': ... is a symlink"]
    assert plan.cursor == {"evil": ["f" * 20, DONE]} and not any("gone" in note for note in plan.notes)


# --- retries: a failed run is retried with a new attempt, a bounded number of times ----------------

def test_a_failed_run_is_retried_with_the_next_attempt_then_given_up_loudly() -> None:
    assert decide("news", "fp", RunHistory([], [False], 0, None), 3)[:2] == (PENDING, 1)
    state, attempt, line, loud = decide("news", "fp", RunHistory([], [False, False, False], 2, None), 3)
    assert (state, attempt, loud) == (PENDING, 3, True) and "retry 3 of 3" in line
    state, attempt, line, loud = decide("news", "fp", RunHistory([], [False] * 4, 3, None), 3)
    assert (state, attempt, loud) == (GAVE_UP, None, True) and "gave up" in line and "by hand" in line
    assert decide("news", "fp", RunHistory([], [True, False, False], 2, None), 3)[:2] == (DONE, None)
    assert decide("news", "fp", RunHistory([], [False], 0, None), 0)[0] == GAVE_UP  # retries off


def test_nothing_is_launched_while_a_run_of_the_domain_is_queued_or_in_flight() -> None:
    for streak in ([], [False], [True]):
        assert decide("news", "fp", RunHistory(["r1"], streak, 0, None), 3)[:2] == (PENDING, None)


def test_a_revert_retrains_on_the_older_data_with_a_run_key_never_used() -> None:
    # A ran (attempt 0), then B ran and was ingested; the data is A again: the sensor's latest run
    # was on B, so nothing on A since, and raw_corpus holds B.
    state, attempt, line, _ = decide("news", "A", RunHistory([], [], 0, "B"), 3)
    assert (state, attempt) == (PENDING, 1) and "changed" in line


def test_a_gave_up_domain_is_looked_at_again_and_a_data_change_starts_over(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    fingerprint = landing_fingerprint(tmp_path / "news")
    gave_up = tick(tmp_path, {}, {"news"}, history={"news": RunHistory([], [False] * 4, 3, None)})
    assert gave_up.runs == {} and gave_up.cursor["news"] == [fingerprint, GAVE_UP] and "gave up" in gave_up.warnings[0]
    # A run launched by hand on the same data succeeded: done, no more warnings.
    fixed = tick(tmp_path, gave_up.cursor, {"news"}, history={"news": RunHistory([], [True], 3, None)})
    assert fixed.cursor["news"] == [fingerprint, DONE] and fixed.warnings == []
    land(tmp_path, "news", "b.jsonl", doc(2))
    changed = tick(tmp_path, gave_up.cursor, {"news"}, history={"news": RunHistory([], [], None, fingerprint)})
    assert changed.runs["news"][1] == 0 and changed.runs["news"][0] != fingerprint


# --- hashing: cached per file version, bounded per tick, equal to landing_fingerprint ---------------

def big_domain(root: Path, files: int = 3, size: int = 3 * MiB // 2) -> Path:
    for i in range(files):
        land(root, "big", f"part-{i}.jsonl", (doc(i) * (size // len(doc(i)) + 1))[:size])
    return root / "big"


def test_a_big_domain_is_hashed_over_several_ticks_to_the_same_fingerprint(tmp_path: Path) -> None:
    folder = big_domain(tmp_path / "landing")
    small = land(tmp_path / "landing", "news", "a.jsonl", doc(1)).stat().st_size
    cache = DigestCache(tmp_path / "cache")
    cursor, seen = {"big": ["old-fingerprint", DONE]}, []
    for _ in range(10):
        plan = tick(tmp_path / "landing", cursor, {"big", "news"}, cache=cache, budget=HashBudget(MiB))
        if "big" in plan.runs:
            break
        assert plan.cursor["big"] == ["old-fingerprint", DONE]  # kept while hashing goes on
        seen += [n for n in plan.notes if n.startswith("big: hashing")]
        cursor = plan.cursor
    assert plan.runs["big"][0] == landing_fingerprint(folder)
    # The small domain is hashed first (and runs on the first tick), the big one gets the rest.
    assert seen[0] == f"big: hashing, {MiB - small} of {9 * MiB // 2} bytes; going on next tick" and len(seen) == 4
    assert cursor["news"][1] == PENDING


def test_one_changed_file_rehashes_only_that_file(tmp_path: Path) -> None:
    folder = big_domain(tmp_path / "landing", files=4, size=MiB)
    cache = DigestCache(tmp_path / "cache")
    tick(tmp_path / "landing", {}, set(), cache=cache)
    changed = land(tmp_path / "landing", "big", "part-2.jsonl", doc(9) * 10)
    budget = HashBudget(1 << 40)
    plan = tick(tmp_path / "landing", {}, {"big"}, cache=cache, budget=budget)
    assert budget.spent == changed.stat().st_size
    assert plan.runs["big"][0] == landing_fingerprint(folder)


def test_a_cache_that_lies_about_nothing_but_is_corrupt_only_costs_hashing(tmp_path: Path) -> None:
    folder = big_domain(tmp_path / "landing", files=1, size=1000)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "big.json").write_text("{not json")
    plan = tick(tmp_path / "landing", {}, set(), cache=DigestCache(tmp_path / "cache"))
    assert plan.runs["big"][0] == landing_fingerprint(folder)


# --- faults: one domain failing to scan never stops the others --------------------------------------

class DeletingCache(DigestCache):
    """A producer deletes a file after the listing and before hashing (between the two phases)."""

    def __init__(self, victim: Path) -> None:
        super().__init__(None)
        self.victim = victim

    def load(self, domain: str) -> dict[str, list]:
        if domain == self.victim.parent.name:
            self.victim.unlink(missing_ok=True)
        return {}


def test_a_file_that_vanishes_holds_back_its_domain_only(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    victim = land(tmp_path, "news", "b.jsonl", doc(2))
    land(tmp_path, "legal", "a.jsonl", doc(3))
    cursor = {"news": ["previous-fingerprint", DONE]}
    plan = tick(tmp_path, cursor, {"news", "legal"}, cache=DeletingCache(victim))
    assert list(plan.runs) == ["legal"] and plan.cursor["news"] == cursor["news"]
    [warning] = plan.warnings
    assert warning.startswith("news: not scanned this tick: file b.jsonl: [Errno 2]") and "next tick" in warning


def test_a_folder_that_cannot_be_listed_holds_back_its_domain_only(tmp_path: Path) -> None:
    land(tmp_path, "news", "a.jsonl", doc(1))
    land(tmp_path, "legal", "a.jsonl", doc(3))
    bury_unlistable_folder(tmp_path / "news")  # a folder too deep to list by path
    cursor = {"news": ["previous-fingerprint", DONE]}
    plan = tick(tmp_path, cursor, {"news", "legal"})
    assert list(plan.runs) == ["legal"] and plan.cursor["news"] == cursor["news"]
    assert "cannot list folder" in plan.warnings[0] and "held back" in plan.warnings[0]


def test_a_domain_folder_swapped_for_a_symlink_is_an_error_of_that_domain(tmp_path: Path) -> None:
    land(tmp_path / "landing", "legal", "a.jsonl", doc(3))
    land(tmp_path, "elsewhere", "a.jsonl", doc(1))
    (tmp_path / "landing" / "news").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    plan = tick(tmp_path / "landing", {}, {"legal"})
    assert list(plan.runs) == ["legal"] and "news" not in plan.new_domains
    assert "symlink" in plan.warnings[0] and plan.warnings[0].startswith("news: not scanned")


def test_a_file_changed_or_deleted_while_hashed_is_an_error_naming_it(tmp_path: Path) -> None:
    path = land(tmp_path, "news", "a.jsonl", doc(1))
    files = stat_landing_files(tmp_path / "news")
    path.write_text(doc(1) + doc(2))
    with pytest.raises(ScanError, match="a.jsonl changed"):
        domain_digests(tmp_path / "news", files, {}, HashBudget(1 << 40))
    files = stat_landing_files(tmp_path / "news")
    path.unlink()
    with pytest.raises(ScanError, match=r"file a.jsonl: \[Errno 2\]"):
        domain_digests(tmp_path / "news", files, {}, HashBudget(1 << 40))
