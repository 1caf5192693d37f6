"""The `landing` fixture of the pipeline tests (imported by name): an empty landing zone and artifact
store in a temporary folder. Not a conftest.py: tests/training has one, and `import conftest` must stay unambiguous."""

from pathlib import Path

import pytest


@pytest.fixture
def landing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LORALINE_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    (tmp_path / "landing").mkdir()
    return tmp_path / "landing"
