"""Which entries of a domain folder are read, skipped on purpose or refused, and why (listing.py)."""

from pathlib import Path

import dagster as dg
import pytest

from assets.common.domains import UnsafeDomainFolder
from assets.corpora.listing import list_domain_files, scan_domain_files
from resources.landing import LandingZone


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


def landing_with_domains(tmp_path: Path) -> Path:
    """landing/{news,legal} and a hidden shared folder, plus secrets outside the landing root."""
    landing = tmp_path / "landing"
    put(landing / "news", "own.jsonl")
    put(landing / "legal", "contract.jsonl", '{"text": "legal rows"}\n')
    put(landing / ".shared", "common.jsonl", '{"text": "shared rows"}\n')
    put(landing, "Loose Folder/x.jsonl")
    put(tmp_path / "outside", "secret.jsonl", '{"text": "secret"}\n')
    return landing


def test_a_symlinked_domain_folder_is_refused_naming_the_domain(tmp_path: Path) -> None:
    landing = landing_with_domains(tmp_path)
    (landing / "evil").symlink_to(tmp_path / "outside", target_is_directory=True)
    (landing / "alias").symlink_to(landing / "legal", target_is_directory=True)
    for name in ("evil", "alias"):
        with pytest.raises(UnsafeDomainFolder, match=f"domain '{name}'.*symlink"):
            scan_domain_files(landing / name)
        with pytest.raises(UnsafeDomainFolder):
            list_domain_files(landing / name)


def test_a_domain_folder_that_became_a_symlink_later_is_refused(tmp_path: Path) -> None:
    landing = landing_with_domains(tmp_path)
    assert list_domain_files(landing / "news")
    (landing / "news").rename(tmp_path / "news-moved")
    (landing / "news").symlink_to(tmp_path / "news-moved", target_is_directory=True)
    with pytest.raises(UnsafeDomainFolder, match="domain 'news'"):
        scan_domain_files(landing / "news")


def test_a_symlinked_landing_root_is_allowed(tmp_path: Path) -> None:
    real = landing_with_domains(tmp_path)
    (tmp_path / "link-to-landing").symlink_to(real, target_is_directory=True)
    domain = tmp_path / "link-to-landing" / "news"
    (domain / "shared.jsonl").symlink_to("../.shared/common.jsonl")
    listing = scan_domain_files(domain)
    assert [p.name for p in listing.paths] == ["own.jsonl", "shared.jsonl"] and listing.refused == []


def test_links_inside_a_domain_stay_inside_it_or_a_hidden_shared_folder(tmp_path: Path) -> None:
    landing = landing_with_domains(tmp_path)
    news = landing / "news"
    links = {
        "own-link.jsonl": "own.jsonl",                      # inside its own folder: read
        "own-dir": ".",                                      # its own folder again: read once
        "shared.jsonl": "../.shared/common.jsonl",          # hidden shared folder: read
        "shared-dir": "../.shared",
        "root": "..",                                        # the landing root: every domain
        "above": "../..",                                    # above the landing root
        "other.jsonl": "../legal/contract.jsonl",           # another domain's file
        "other-dir": "../legal",                             # another domain's folder
        "future.jsonl": "../future/x.jsonl",                # a folder that may become a domain
        "loose.jsonl": "../Loose Folder/x.jsonl",           # not hidden: not a shared place
        "outside.jsonl": str(tmp_path / "outside" / "secret.jsonl"),
    }
    put(landing / "future", "x.jsonl")
    for name, target in links.items():
        (news / name).symlink_to(target)
    listing = scan_domain_files(news)
    read = [p.relative_to(news).as_posix() for p in listing.paths]
    assert read == ["own-link.jsonl", "own.jsonl", "shared-dir/common.jsonl", "shared.jsonl"]
    refused = dict(listing.refused)
    assert "read already" in refused["own-dir"]
    assert "landing root or a folder above this domain" in refused["root"]
    assert "outside the landing root" in refused["above"] and "outside the landing root" in refused["outside.jsonl"]
    for name in ("other.jsonl", "other-dir"):
        assert "into 'legal', another domain's folder" in refused[name]
    assert "into 'future', another domain's folder" in refused["future.jsonl"]
    assert "outside any hidden folder" in refused["loose.jsonl"]
    assert all(reason.endswith("refused") for name, reason in refused.items() if name != "own-dir")


def test_a_link_to_a_folder_above_the_domain_inside_a_wider_root_is_refused(tmp_path: Path) -> None:
    landing = landing_with_domains(tmp_path)
    (landing / "news" / "up").symlink_to(landing, target_is_directory=True)
    refused = dict(scan_domain_files(landing / "news", landing_root=tmp_path).refused)
    assert "landing root or a folder above this domain" in refused["up"]


def test_the_landing_zone_refuses_symlinked_domain_folders(tmp_path: Path) -> None:
    landing = landing_with_domains(tmp_path)
    (landing / "evil").symlink_to(tmp_path / "outside", target_is_directory=True)
    zone = LandingZone(root=str(landing))
    folders = zone.scan_folders()
    assert folders.valid == ["legal", "news"] and folders.invalid == ["Loose Folder"]
    assert [name for name, _ in folders.refused] == ["evil"] and "symlink" in folders.refused[0][1]
    assert zone.domain_folders() == (["legal", "news"], ["Loose Folder"])
    with pytest.raises(dg.Failure, match="domain 'evil'.*symlink"):
        zone.domain_dir("evil")
    assert zone.domain_dir("news") == landing / "news"
