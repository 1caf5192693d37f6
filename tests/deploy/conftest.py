"""Fixtures of the deployment tests: `postgres`, a real PostgreSQL server on 127.0.0.1 for the
session (tests/deploy/postgres_server.py; benchmarks import that module directly)."""

from collections.abc import Iterator

import pytest
from postgres_server import PostgresServer, PostgresUnavailable, running_postgres


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """One server for the session; each test module takes its own database (`create_database`).
    Fails, never skips, where PostgreSQL is not installed: the deployment tier must prove it."""
    try:
        with running_postgres(tmp_path_factory.mktemp("postgres")) as server:
            yield server
    except PostgresUnavailable as error:  # raised while starting it only: a test's own failure never reaches a fixture
        pytest.fail(str(error), pytrace=False)
