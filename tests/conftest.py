"""Shared fixtures: real twin servers in their own processes on ephemeral loopback ports,
always stopped; ZeroMQ sockets closed with linger 0 (pyzmq's own test habits).

Two lanes: ``make check`` runs ``-m "not process"`` — the tests that start no process — with
CELLCTL_NO_PROCESSES=1, under which starting one fails the test that tried (a test that needs a
process and is not marked ``process`` is found at once); ``make test`` runs everything."""

from __future__ import annotations

from pathlib import Path

import os
import subprocess

import pytest
import zmq

from cellctl.drivers.twin import TwinDriver
from cellctl.processes.children import TwinProcess
from tests.helpers.names import loaded_twice

CONFIGS = Path(__file__).parent / "configs"
# fixtures that start processes: a test using any of them (directly or through another) is `process`
PROCESS_FIXTURES = {"cellctl_twin", "cellctl_line", "cellctl_cell", "twin_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.process)


@pytest.fixture(autouse=True)
def _no_processes_in_the_fast_lane(monkeypatch, request):
    """Under CELLCTL_NO_PROCESSES=1 (``make check``) starting a process fails the test."""
    if os.environ.get("CELLCTL_NO_PROCESSES") != "1" or request.node.get_closest_marker("process"):
        return

    def refuse(self, args, *rest, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts a process ({args!r}) but is not marked `process`")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


@pytest.fixture
def twin_factory(cellctl_twin):
    """The plugin's ``cellctl_twin`` (cellctl/testkit/pytest_plugin.py), the fixture partners use too."""
    return cellctl_twin


@pytest.fixture
def kuka_twin(twin_factory) -> TwinProcess:
    return twin_factory(CONFIGS / "kuka.yaml")


@pytest.fixture
def kuka(kuka_twin):
    with TwinDriver(kuka_twin.endpoint, "press") as driver:
        yield driver


@pytest.fixture
def raw_client(kuka_twin):
    """A bare DEALER socket on the twin, for sending frames no driver would send."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(kuka_twin.endpoint)
    yield sock
    sock.close(0)
    ctx.term()


def recv(sock: zmq.Socket, timeout: float = 5.0):
    """Receive one reply or fail the test, never hang."""
    from cellctl.drivers.twin_wire import unpack

    assert sock.poll(int(timeout * 1000)), f"no reply within {timeout}s"
    return unpack(sock.recv())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No module of this repository was loaded under two names during the whole session (an error
    class imported as ``drivers.errors`` and as ``cellctl.drivers.errors`` would break ``except``)."""
    twice = loaded_twice()
    if twice:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for path, names in twice.items():
            reporter.write_line(f"loaded under two names: {path}: {', '.join(names)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
