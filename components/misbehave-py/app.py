"""A Python step that tries what the sandbox must stop, for the tests: the same modes as the
Rust `misbehave` component, so the same limits are shown to hold for a Python guest (whose
runtime has its own file, socket and allocation paths).
"""

import encodings.idna  # noqa: F401  (socket encodes host names with it: bundle it at build time)
import os
import socket
from typing import NamedTuple

import weft


class Outcome(NamedTuple):
    outcome: str
    env_count: int


def _read(path):
    try:
        with open(path) as f:
            return "read: " + f.read(64)
    except OSError as e:
        return f"denied: {type(e).__name__}: {e}"


def _connect(addr):
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"hello from the python sandbox")
        return "connected"
    except OSError as e:
        return f"denied: {type(e).__name__}: {e}"


def _alloc():
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))


def _spin():
    n = 0
    while True:
        n += 1


@weft.step
def misbehave(mode: str, path: str = "/etc/passwd", var: str = "", addr: str = "") -> Outcome:
    if mode == "read":
        outcome = _read(path)
    elif mode == "env":
        outcome = os.environ.get(var, "<unset>")
    elif mode == "net":
        outcome = _connect(addr)
    elif mode == "alloc":
        _alloc()
    elif mode == "loop":
        _spin()
    elif mode == "raise":
        raise ZeroDivisionError("asked to divide by zero")
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return Outcome(outcome, len(os.environ))
