"""Which entries of a domain folder are read, skipped on purpose or refused, and why (listing.py)."""

from pathlib import Path

from assets.corpora.listing import scan_domain_files


def put(folder: Path, name: str, text: str = '{"text": "a document"}\n') -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_files_skipped_on_purpose_are_listed_with_their_reason(tmp_path: Path) -> None:
    domain = tmp_path / "landing" / "news"
    for name in ("a.jsonl", ".hidden.jsonl", "b.jsonl.part", "c.jsonl.tmp", "d.jsonl~", "domain.yaml", "sub/domain.yml", ".git/x"):
        put(domain, name)
    listing = scan_domain_files(domain)
    assert [p.relative_to(domain).as_posix() for p in listing.paths] == ["a.jsonl", "sub/domain.yml"]
    skipped = dict(listing.skipped)
    assert sorted(skipped) == [".git", ".hidden.jsonl", "b.jsonl.part", "c.jsonl.tmp", "d.jsonl~", "domain.yaml"]
    assert "hidden" in skipped[".git"] and "partial" in skipped["b.jsonl.part"] and "settings" in skipped["domain.yaml"]
    assert listing.refused == []
