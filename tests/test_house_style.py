"""House rules from DESIGN.md section 3 that a test can keep: import direction, lazy heavy
imports, a small definitions.py, no postponed annotations where Dagster reads signatures."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRAPPER_NAMES = {"assets.py", "checks.py"}
PIPES_ENTRIES = {"__main__.py"}  # processes launched through Dagster Pipes: dagster_pipes, never dagster
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "great_expectations", "mlflow", "kubernetes", "s3fs")


def python_files(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def imports_dagster(path: Path) -> bool:
    return any(name.split(".")[0] == "dagster" or name.startswith("dagster_") for name in imported_modules(path))


def has_future_annotations(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.ImportFrom) and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in ast.walk(tree)
    )


def pure_modules() -> list[Path]:
    partitions = ROOT / "assets" / "partitions"
    return [
        p for p in python_files("assets")
        if p.name not in WRAPPER_NAMES and partitions not in p.parents
    ]


def test_there_are_pure_modules_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in pure_modules()}
    assert {"assets/quality/cleaning.py", "assets/tokenization/formatting.py", "assets/common/atomic.py"} <= names
    assert not any(name.endswith(("/assets.py", "/checks.py")) or "/partitions/" in name for name in names)


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pure_modules_do_not_import_dagster(path):
    if path.name in PIPES_ENTRIES:
        # The external side of Dagster Pipes speaks through dagster_pipes (no dagster dependency).
        assert imported_modules(path) & {"dagster_pipes"} and not any(
            name.split(".")[0] == "dagster" or (name.startswith("dagster_") and name != "dagster_pipes") for name in imported_modules(path)
        ), f"{path.relative_to(ROOT)} may import dagster_pipes only"
        return
    assert not imports_dagster(path), f"{path.relative_to(ROOT)} imports dagster; only assets.py/checks.py may"


def test_the_dagster_detector_works(tmp_path):
    samples = {
        "import dagster as dg\n": True,
        "from dagster import asset\n": True,
        "def f():\n    from dagster._core.errors import DagsterError\n": True,
        "import dagster_webserver\n": True,
        "import polars as pl\n# dagster is mentioned in a comment\n": False,
        "TEXT = 'import dagster'\n": False,
        "from . import dagster\n": False,
    }
    for number, (source, expected) in enumerate(samples.items()):
        path = tmp_path / f"m{number}.py"
        path.write_text(source)
        assert imports_dagster(path) is expected, source


def test_definitions_is_small():
    lines = (ROOT / "pipelines" / "definitions.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 60, f"pipelines/definitions.py has {len(lines)} lines; keep it under 60"


def dagster_modules() -> list[Path]:
    return [p for p in python_files("assets", "pipelines", "resources") if imports_dagster(p)]


def test_there_are_dagster_modules_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in dagster_modules()}
    assert "pipelines/definitions.py" in names
    assert "assets/quality/assets.py" in names


@pytest.mark.parametrize("path", dagster_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_dagster_modules_do_not_postpone_annotations(path):
    # Postponed annotations hide `context` / `Config` types from Dagster's signature reading.
    assert not has_future_annotations(path), f"{path.relative_to(ROOT)} imports dagster and uses `from __future__ import annotations`"


@pytest.mark.integration  # a fresh interpreter
def test_loading_definitions_does_not_import_heavy_libraries():
    code = (
        "import json, sys\n"
        "import pipelines.definitions\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing pipelines.definitions loaded {loaded}; import them inside functions"


def test_no_import_climbs_a_floor():
    from layers import climbing_imports

    assert climbing_imports() == []


def test_the_floor_check_finds_climbing_and_sideways_imports(tmp_path):
    from layers import climbing_imports

    files = {
        "assets/common/a.py": "from assets.training import recipe\n",  # a room importing a stage
        "assets/training/b.py": "def f():\n    from assets.evaluation.metrics import x\n",  # stage -> stage, in a function
        "resources/c.py": "import pipelines.definitions\n",  # resources -> pipelines
        "assets/evaluation/d.py": "from assets.models.batches import IGNORE_INDEX\nfrom resources.storage import S\n",  # fine
        "pipelines/e.py": "from assets.training.assets import qlora_adapter\n",  # fine
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    assert climbing_imports(tmp_path) == [
        "assets/common/a.py:1: assets.common.a -> assets.training (room imports up into stage)",
        "assets/training/b.py:2: assets.training.b -> assets.evaluation.metrics (a stage imports another stage)",
        "resources/c.py:1: resources.c -> pipelines.definitions (resources imports up into pipelines)",
    ]
