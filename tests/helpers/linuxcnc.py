"""A real LinuxCNC (Debian's ``linuxcnc-uspace``) in its simulation config, headless with
``DISPLAY = linuxcncrsh``, started by a test in a network namespace of its own (linuxcncrsh binds
every address) and an IPC namespace of its own (its shared memory): the test reaches it at the
namespace's address on port 5007. As root, LinuxCNC's
realtime process needs a fallback uid (``RTAPI_UID``: nobody) and a FIFO path that uid can write;
its launcher script wants a terminal (``script`` gives it one). Every process in the namespace is
stopped by PID at the end (stopping the launcher script leaves its children)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cellctl.drivers.linuxcnc import LinuxCncMachine
from cellctl.drivers.machine import MachineDescription
from tests.helpers.netns import need_root_and_netns, pcs

PORT = 5007
START_S = 90.0  # wall s for linuxcncrsh to answer (~10 s here)
SETTLE_S = 4.0  # wall s after it first answers before it is sent a command
STOP_S = 20.0  # wall s to stop every process of it
NOBODY = 65534
PANEL = MachineDescription("panel", "cnc", "vice", "machined", "blank", False, names_jobs=False)  # the operator's

INI = """\
[EMC]
VERSION = 1.1
MACHINE = cellctl-sim
[DISPLAY]
DISPLAY = linuxcncrsh
PROGRAM_PREFIX = {programs}
[TASK]
TASK = milltask
CYCLE_TIME = 0.010
[RS274NGC]
PARAMETER_FILE = {base}/sim.var
[EMCIO]
EMCIO = io
CYCLE_TIME = 0.100
[EMCMOT]
EMCMOT = motmod
SERVO_PERIOD = 1000000
[HAL]
HALFILE = LIB:basic_sim.tcl
[TRAJ]
COORDINATES = XYZ
LINEAR_UNITS = mm
ANGULAR_UNITS = degree
MAX_LINEAR_VELOCITY = 50
{axes}
[KINS]
JOINTS = 3
KINEMATICS = trivkins coordinates=XYZ
"""
LIMITS = "MIN_LIMIT = -100\nMAX_LIMIT = 100\nMAX_VELOCITY = 50\nMAX_ACCELERATION = 500\n"


def program(path: Path, seconds: float = 4.0) -> Path:
    """An NGC program the simulated machine takes about ``seconds`` over (a square at 600 mm/min)."""
    side = max(1.0, seconds * 10.0 / 4)  # 10 mm/s, four sides
    path.write_text(f"G21 G90\nG0 X0 Y0 Z0\nM3 S1000\nG1 X{side:.1f} F600\nG1 Y{side:.1f}\nG1 X0\nG1 Y0\nM5\nM2\n")
    return path


def _answers(host: str) -> bool:
    try:
        with socket.create_connection((host, PORT), timeout=1.0):
            return True
    except OSError:
        return False


def _stop_namespace(ns: str) -> None:
    """Every process in the namespace, by PID, until none is left: LinuxCNC's shutdown script starts
    new ones (its realtime stop) while the old ones die."""
    deadline = time.monotonic() + STOP_S
    while time.monotonic() < deadline:
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(0.3)
    raise AssertionError(f"processes left in network namespace {ns} after {STOP_S:.0f}s")


@contextlib.contextmanager
def linuxcnc(base: Path) -> Iterator[str]:
    """LinuxCNC's sim in a namespace; yields the address its linuxcncrsh answers at (port 5007)."""
    need_root_and_netns()
    if shutil.which("linuxcnc") is None:
        raise AssertionError("linuxcnc is missing: `make test` installs Debian's linuxcnc-uspace (.ci/system-packages)")
    base.mkdir(parents=True, exist_ok=True)
    programs = base / "nc"
    programs.mkdir(exist_ok=True)
    axes = "".join(f"[AXIS_{a}]\n{LIMITS}" for a in "XYZ") + "".join(
        f"[JOINT_{j}]\nTYPE = LINEAR\nHOME_SEQUENCE = 0\n{LIMITS}" for j in range(3))
    ini = base / "cnc.ini"
    ini.write_text(INI.format(programs=programs, base=base, axes=axes))
    fifo = Path(tempfile.mkdtemp(prefix="cellctl-rtapi-"))  # (a path the fallback uid reaches: not under 0700 dirs)
    os.chown(fifo, NOBODY, NOBODY)
    with pcs(1, subnet="10.79.0") as [(ns, host)]:
        command = f"env RTAPI_UID={NOBODY} RTAPI_FIFO_PATH={fifo}/fifo linuxcnc {ini}"
        # its own IPC namespace too: LinuxCNC's shared memory is then its own (two tests' LinuxCNCs never
        # meet), and goes with its last process
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--ipc", "script", "-qfc", command,
                                 str(base / "linuxcnc.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                cwd=base)
        try:
            deadline = time.monotonic() + START_S
            while not _answers(host):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"linuxcncrsh did not answer at {host}:{PORT}: see {base / 'linuxcnc.log'}")
                time.sleep(0.3)
            time.sleep(SETTLE_S)  # linuxcncrsh listens before LinuxCNC's task is up: a command then crashes it
            yield host
        finally:
            try:
                _stop_namespace(ns)
            finally:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
                shutil.rmtree(fifo, ignore_errors=True)


def operator(host: str, *commands: str) -> None:
    """The machine's own operator, at its panel: a second linuxcncrsh session."""
    with LinuxCncMachine(PANEL, host, PORT) as panel:
        for command in commands:
            panel._set(command)


def ready(host: str) -> None:
    """The operator releases the E-stop, powers the machine on and homes it (auto mode needs it)."""
    operator(host, "estop off", "machine on", "mode manual", "home -1")
    deadline = time.monotonic() + 30
    with LinuxCncMachine(PANEL, host, PORT) as panel:
        while panel._get("joint_homed").split()[:3] != ["YES"] * 3:
            assert time.monotonic() < deadline, "LinuxCNC's joints did not home"
            time.sleep(0.2)
