"""raw_corpus through real Dagster runs: the version names the bytes read, counts are checked
against an independent count, skipped files are listed, and scrub_pii keeps personal data out of
the event log (issue 11)."""

import json
import random
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

import assets.corpora.assets as raw_asset
from assets.corpora import readers
from assets.corpora.landing_scan import landing_fingerprint
from pipelines.definitions import defs
from pipelines.registration import register_domains

READ_AND_CLEAN = ("raw_corpus", "clean_corpus", "quarantined_rows")
EMAIL, PHONE = "jane.doe@example.com", "+1 555 010 9999"


WORDS = ("river delta tide moon bread violin apple sail knot garden basalt comet harbor lantern meadow orchid "
         "pepper quartz saddle timber velvet walnut yarrow zephyr anchor beacon cobalt dune ember fjord").split()


def docs(tag: str, count: int = 20) -> str:
    """`count` records no cleaning filter removes: different words each, not near-duplicates."""
    lines = []
    for i in range(count):
        pick = random.Random(f"{tag}-{i}")
        lines.append(json.dumps({"text": f"Version {tag}, note {i}: " + " ".join(pick.choices(WORDS, k=14)) + "."}))
    return "\n".join(lines) + "\n"


def run(instance: dg.DagsterInstance, domain: str, selection: tuple[str, ...] = ("raw_corpus",)) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey(a) for a in selection})
    return job.execute_in_process(instance=instance, partition_key=domain, raise_on_error=False)


def materialization(result: dg.ExecuteInProcessResult, asset: str = "raw_corpus") -> dg.AssetMaterialization:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization


def metadata(result: dg.ExecuteInProcessResult, asset: str = "raw_corpus") -> dict:
    return {key: value.value for key, value in materialization(result, asset).metadata.items()}


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_a_file_rewritten_between_the_look_and_the_read_publishes_the_bytes_read(landing: Path, instance, monkeypatch) -> None:
    (landing / "news").mkdir()
    (landing / "news" / "a.jsonl").write_text(docs("A"))
    register_domains(instance, ["news"])
    look = raw_asset.landed_digests

    def look_then_rewrite(files, unreadable):
        digests = look(files, unreadable)  # the reuse check hashed version A ...
        (landing / "news" / "a.jsonl").write_text(docs("B", 25))  # ... and B lands before the read
        return digests

    monkeypatch.setattr(raw_asset, "landed_digests", look_then_rewrite)
    first = run(instance, "news")
    monkeypatch.setattr(raw_asset, "landed_digests", look)
    assert first.success
    meta = metadata(first)
    assert meta["rows_kept"] == 25 and meta["changed_during_read"] == ["a.jsonl"]
    assert meta["landing_fingerprint"] == landing_fingerprint(landing / "news")  # the sensor's key of B
    # The version describes B, the bytes read: a second look at B finds nothing to do. Before
    # issue 11 it described A, so this run read B again under a second version.
    again = run(instance, "news")
    assert metadata(again)["reused_from_run"] == first.run_id
    assert materialization(again).tags["dagster/data_version"] == materialization(first).tags["dagster/data_version"]


def test_a_file_rewritten_after_the_read_is_not_described_by_the_metadata(landing: Path, instance, monkeypatch) -> None:
    (landing / "news").mkdir()
    (landing / "news" / "a.jsonl").write_text(docs("A"))
    register_domains(instance, ["news"])
    read_key = landing_fingerprint(landing / "news")
    count = raw_asset.tally

    def rewrite_then_count(folder, reads, refused):
        (landing / "news" / "a.jsonl").write_text(docs("C", 30))
        return count(folder, reads, refused)

    monkeypatch.setattr(raw_asset, "tally", rewrite_then_count)
    result = run(instance, "news")
    assert result.success
    meta = metadata(result)
    # Before issue 11 the fingerprint was hashed again after the read, from C.
    assert meta["landing_fingerprint"] == read_key != landing_fingerprint(landing / "news")
    assert meta["records_counted"] == meta["rows_in"] == 20
    assert meta["records_not_counted"] == {"a.jsonl": "it changed after it was read"}


def test_a_reader_that_loses_rows_fails_counts_reconcile(landing: Path, instance, monkeypatch) -> None:
    (landing / "news").mkdir()
    (landing / "news" / "a.jsonl").write_text(docs("A") + "not json\n")
    register_domains(instance, ["news"])
    original = readers._READERS[".jsonl"]

    def lossy(stream, out, size, codec, bom):  # drops line 2 without a trace
        add = out.add
        out.add = lambda line, obj, raw: None if line == 2 else add(line, obj, raw)
        original(stream, out, size, codec, bom)

    monkeypatch.setitem(readers._READERS, ".jsonl", lossy)
    result = run(instance, "news", READ_AND_CLEAN)
    raw = metadata(result)
    assert (raw["rows_kept"], raw["rows_quarantined"], raw["records_counted"]) == (19, 1, 21)
    assert raw["count_mismatches"] == {"a.jsonl": "counted 21 records, read 20 (19 kept + 1 quarantined)"}
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "counts_reconcile"]
    # Before issue 11 the check summed the reader's own numbers and passed.
    assert not check.passed
    assert check.description.startswith("21 rows in = 19 kept + 1 quarantined + 0 filtered; rows in: records counted")
    assert "a.jsonl: counted 21 records, read 20" in check.description


def test_an_honest_read_reconciles_with_the_independent_count(landing: Path, instance) -> None:
    (landing / "news").mkdir()
    (landing / "news" / "a.jsonl").write_text(docs("A") + "not json\n\n   \n" + docs("A", 3))
    (landing / "news" / "b.csv").write_text('text\n"a, quoted\nrow that spans lines about rivers and deltas"\n\n"short"\n')
    pl.DataFrame({"text": [f"Parquet document {i} about rivers and their deltas." for i in range(7)]}).write_parquet(
        landing / "news" / "c.parquet")
    (landing / "news" / "d.json").write_text(json.dumps([{"text": "A json element about rivers and deltas."}, [1, 2]]))
    (landing / "news" / "e.json").write_text('[{"text": "cut')
    register_domains(instance, ["news"])
    result = run(instance, "news", READ_AND_CLEAN)
    raw = metadata(result)
    assert raw["records_counted"] == raw["rows_in"] == 21 + 3 + 2 + 7 + 2 + 1
    assert raw["count_mismatches"] == {} and list(raw["records_not_counted"]) == ["e.json"]
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "counts_reconcile"]
    assert check.passed, check.description


def test_files_skipped_on_purpose_are_listed_in_the_metadata(landing: Path, instance, tmp_path: Path) -> None:
    folder = landing / "news"
    folder.mkdir()
    (folder / "a.jsonl").write_text(docs("A"))
    (folder / ".draft.jsonl").write_text(docs("hidden"))
    (folder / "b.jsonl.part").write_text(docs("partial"))
    (folder / "domain.yml").write_text("cleaning: {min_chars: 5}\n")
    (tmp_path / "secret.jsonl").write_text(docs("secret"))
    (folder / "secret.jsonl").symlink_to(tmp_path / "secret.jsonl")
    register_domains(instance, ["news"])
    meta = metadata(run(instance, "news"))
    assert meta["landing_fingerprint"] == landing_fingerprint(folder)  # domain.yml included, as the sensor does
    skipped = meta["skipped_files"]
    assert sorted(skipped) == [".draft.jsonl", "b.jsonl.part", "domain.yml", "secret.jsonl"]
    assert skipped["domain.yml"].startswith("the domain's settings file")
    assert "outside the landing root" in skipped["secret.jsonl"]


def test_nothing_skipped_lists_nothing(landing: Path, instance) -> None:
    (landing / "news").mkdir()
    (landing / "news" / "a.jsonl").write_text(docs("A"))
    register_domains(instance, ["news"])
    meta = metadata(run(instance, "news"))
    assert meta["skipped_files"] == {} and meta["changed_during_read"] == [] and meta["records_not_counted"] == {}


def test_scrub_pii_keeps_quarantined_personal_data_out_of_the_event_log(landing: Path, instance) -> None:
    folder = landing / "news"
    folder.mkdir()
    (folder / "domain.yaml").write_text("cleaning: {scrub_pii: true}\n")
    bad = [f'{{"text": "write to {EMAIL} or call {PHONE}", broken\n',
           json.dumps({"messages": [{"role": EMAIL, "content": "hi"}]}) + "\n",
           json.dumps({EMAIL: "a record of an unknown shape", "phone": PHONE}) + "\n",
           "x" * 190 + f" {EMAIL}\n"]
    (folder / "a.jsonl").write_text(docs("A") + "".join(bad))
    register_domains(instance, ["news"])
    result = run(instance, "news", READ_AND_CLEAN)
    assert metadata(result)["rows_quarantined"] == 4
    leaks = ("jane.doe", "555 010")
    events = [dg.serialize_value(record.event_log_entry) for record in instance.get_records_for_run(result.run_id).records]
    assert events and not [event for event in events if any(leak in event for leak in leaks)]
    for asset in READ_AND_CLEAN:
        for value in materialization(result, asset).metadata.values():
            assert not any(leak in dg.serialize_value(value) for leak in leaks)
    raw_dir, rejected_dir = Path(metadata(result)["path"]), Path(metadata(result, "quarantined_rows")["path"])
    for table in (pl.read_parquet(raw_dir / "quarantine.parquet"), pl.read_parquet(rejected_dir / "rejections.parquet")):
        text = table.select("reason", "snippet").write_csv()
        assert "<EMAIL>" in text and not any(leak in text for leak in leaks)
