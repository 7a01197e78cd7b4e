"""PyBullet, imported without its build banner.

PyBullet's extension prints ``pybullet build time: ...`` from C when it is imported, past Python's
own streams. A command's output is read by people and by scripts (``--json``'s last line, a
child's announced endpoint), so every module imports PyBullet from here: the import runs with the
process's stdout and stderr file descriptors pointed at /dev/null, and C's buffers are flushed
before they are given back."""

from __future__ import annotations

import ctypes
import os
import sys
from types import ModuleType


def _import_quietly() -> ModuleType:
    if "pybullet" in sys.modules:
        return sys.modules["pybullet"]
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    libc = ctypes.CDLL(None)
    saved = [os.dup(fd) for fd in (1, 2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(devnull, fd)
        import pybullet

        libc.fflush(None)
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
    return pybullet


pb = _import_quietly()
