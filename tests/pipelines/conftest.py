"""Fixtures of the pipeline tests: `landing`, an empty landing zone and artifact store in a temporary folder."""

from pathlib import Path

import pytest


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORALINE_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    (tmp_path / "landing").mkdir()
    return tmp_path / "landing"
