"""Suite-wide settings: what `compute_dtype: auto` resolves to, and the test tiers.

`--auto-dtype {bfloat16,float32}` sets LORALINE_AUTO_DTYPE for the session, so this process and
every subprocess a test starts (Pipes trainers, torchrun, `dagster dev`) resolve 'auto' alike: an
AVX2-only machine then runs the bf16 path (emulated, slower), a bf16 machine the fp32 one.

Tiers (markers registered in pyproject.toml) are assigned here by folder, so a test file carries a
mark only where its folder mixes kinds:
  unit         code in the test process: no Dagster run, no subprocess, no server (`pytest -m unit`);
  integration  Dagster runs, subprocesses (Pipes, torchrun, a fresh interpreter), servers;
  ui           a real `dagster dev` driven by a browser;
  matrix       the model-family matrix (tests/families/).
A unit test that starts a process fails, naming itself, so the tiers cannot drift unnoticed.

Shared helpers live in modules imported by name (numerics.py, training/toy_data.py, families/); no
test imports a conftest.
"""

import os
import sys
from pathlib import Path

import pytest

from assets.models.loading import AUTO_DTYPE_VARIABLE, AUTO_DTYPES, cpu_flags, forced_auto_dtype, pick_compute_dtype

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "ui", "matrix")
FOLDER_TIERS = {"pipelines": "integration", "deploy": "integration", "ui": "ui", "families": "matrix"}  # any other folder: unit
SHOWN_CPU_FLAGS = ("avx2", "avx512_bf16", "amx_bf16")  # what decides between bf16 and fp32 on a CPU
_PREVIOUS_VALUE = pytest.StashKey[str | None]()


# --- --auto-dtype ---------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--auto-dtype",
        choices=AUTO_DTYPES,
        default=None,
        help=f"force what compute_dtype 'auto' resolves to, in the tests and their subprocesses (sets "
        f"{AUTO_DTYPE_VARIABLE}); default: bfloat16 where the CPU has AVX512-BF16 or AMX, else float32",
    )


def pytest_configure(config: pytest.Config) -> None:
    forced = config.getoption("--auto-dtype")
    if forced is not None:
        config.stash[_PREVIOUS_VALUE] = os.environ.get(AUTO_DTYPE_VARIABLE)
        os.environ[AUTO_DTYPE_VARIABLE] = forced
    try:
        forced_auto_dtype()  # a bad value in the environment stops the session here, not in test 200
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PREVIOUS_VALUE not in config.stash:
        return
    previous = config.stash[_PREVIOUS_VALUE]
    if previous is None:
        os.environ.pop(AUTO_DTYPE_VARIABLE, None)
    else:
        os.environ[AUTO_DTYPE_VARIABLE] = previous


def pytest_report_header(config: pytest.Config) -> list[str]:
    flags = cpu_flags()
    shown = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in SHOWN_CPU_FLAGS)
    return [f"cpu flags: {shown}", _auto_dtype_line()]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if config.get_verbosity() < 0:  # -q (make test) hides the header: keep the dtype in the log
        terminalreporter.write_line(_auto_dtype_line())


def _auto_dtype_line() -> str:
    auto = str(pick_compute_dtype("auto", "cpu")).removeprefix("torch.")
    forced = forced_auto_dtype()
    why = f"forced by {AUTO_DTYPE_VARIABLE}={forced}" if forced else "from the CPU flags; --auto-dtype forces it"
    return f"compute_dtype 'auto' on cpu resolves to {auto} ({why})"


# --- tiers ----------------------------------------------------------------------------------------

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path).resolve()
        if any(item.get_closest_marker(tier) for tier in TIERS) or not path.is_relative_to(TESTS):
            continue  # marked in its file, or not one of ours
        item.add_marker(FOLDER_TIERS.get(path.relative_to(TESTS).parts[0], "unit"))


_running_unit: list[str] = []  # the node id of the unit test running now, if one is
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system"})
# ctypes.util.find_library (assets/common/memory.py finds libc with it) runs these; a library looking
# something up is not the test starting a process of its own.
_LIBRARY_PROBES = frozenset({"ldconfig", "gcc", "cc", "ld", "objdump"})


def _program(args: tuple) -> str:
    """The program a process event starts. Popen reports (executable, argv, ...), and on 3.13 its
    os.posix_spawn follows with (path, argv, env): one Popen can raise two events."""
    program = args[0] if args else None
    if program is None and len(args) > 1:
        argv = args[1]
        program = argv[0] if isinstance(argv, (list, tuple)) and argv else argv
    return Path(os.fsdecode(program)).name if isinstance(program, (str, bytes, os.PathLike)) else ""


def _refuse_processes_in_unit_tests(event: str, args: tuple) -> None:
    if not _running_unit or event not in _PROCESS_EVENTS or _program(args) in _LIBRARY_PROBES:
        return
    raise RuntimeError(f"{_running_unit[0]} is a unit test but starts a process ({event}): mark it integration")


sys.addaudithook(_refuse_processes_in_unit_tests)  # audit hooks stay for the process's life; it checks a flag


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    unit = item.get_closest_marker("unit") is not None
    if unit:
        _running_unit.append(item.nodeid)
    try:
        return (yield)
    finally:
        _running_unit.clear()
