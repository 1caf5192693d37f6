"""The floors of the code and the imports that climb them: `python tests/layers.py` lists every
import that goes from a lower floor up (or sideways from one stage into another) and exits 1 if
there is any. CI runs it; tests/test_house_style.py asserts the list is empty.

Floors, lowest first (DESIGN.md section 2):
  rooms      assets/common, settings, models, expectations, partitions: shared by every stage
  resources  side effects outside the process (Dagster resources)
  stages     assets/<stage>/ for each stage of the chain; a stage never imports another
  pipelines  Dagster wiring, the command line
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("common", "settings", "models", "expectations", "partitions")
FLOORS = {"room": 0, "resources": 1, "stage": 2, "pipelines": 3}


def place(module: str) -> tuple[str, str] | None:
    """(floor, unit) of a project module name, e.g. ('stage', 'assets.training'); None if not ours."""
    parts = module.split(".")
    if parts[0] == "assets" and len(parts) > 1:
        unit = f"assets.{parts[1]}"
        return ("room" if parts[1] in ROOMS else "stage"), unit
    if parts[0] in ("resources", "pipelines"):
        return parts[0], parts[0]
    return None


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def climbing_imports(root: Path = ROOT) -> list[str]:
    """'file:line: module -> module (why)' for each import that breaks the floors."""
    problems = []
    for path in sorted(p for package in ("assets", "resources", "pipelines") for p in (root / package).rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        floor, unit = place(module)
        for line, target in imports(path):
            where = place(target)
            if where is None or where[1] == unit:
                continue
            if FLOORS[where[0]] > FLOORS[floor]:
                why = f"{floor} imports up into {where[0]}"
            elif floor == where[0] == "stage":
                why = "a stage imports another stage"
            else:
                continue
            problems.append(f"{path.relative_to(root)}:{line}: {module} -> {target} ({why})")
    return problems


if __name__ == "__main__":
    found = climbing_imports()
    print("\n".join(found) if found else "no import climbs a floor")
    sys.exit(1 if found else 0)
