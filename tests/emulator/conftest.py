"""Fixtures: one drover_moto server per test session (127.0.0.1, free port), reset before each test."""
import pytest

from harness import DST, SRC, Emulator, start_server, stop_server


@pytest.fixture(scope="session")
def emulator():
    proc, port, tmp = start_server()
    try:
        yield Emulator(port)
    finally:
        stop_server(proc, tmp)


@pytest.fixture(autouse=True)
def fresh(emulator):
    """Reset moto + drover state; jobs finish at the next request unless a test sets durations."""
    status, _ = emulator.control("/_drover/reset", {})
    assert status == 200
    emulator.control("/_drover/config", {"durations": {"default": 0}})
    yield


@pytest.fixture
def ddb(emulator):
    return emulator.client("dynamodb", SRC)


@pytest.fixture
def ddb_dst(emulator):
    return emulator.client("dynamodb", DST)


@pytest.fixture
def backup(emulator):
    return emulator.client("backup", SRC)


@pytest.fixture
def backup_dst(emulator):
    return emulator.client("backup", DST)


@pytest.fixture
def kms(emulator):
    return emulator.client("kms", SRC)


@pytest.fixture
def kms_dst(emulator):
    return emulator.client("kms", DST)
