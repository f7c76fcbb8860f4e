"""Linux process plumbing for the children the launcher starts: parent-death signals, process
groups, and who holds a listening port (all read from /proc; elsewhere the checks are skipped).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ON_LINUX = sys.platform.startswith("linux")
_TCP_LISTEN = "0A"  # state column of /proc/net/tcp


def die_with_parent_hook() -> Callable[[], None] | None:
    """A subprocess preexec_fn that has the kernel SIGKILL the child when the thread that started
    it dies (the gateway killed with SIGKILL included); None off Linux.

    prctl is looked up here, in the parent, so the child between fork and exec only makes the
    call itself.
    """
    if not ON_LINUX:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return hook


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int, exclude_zombies: bool = True) -> list[int]:
    """Processes in process group `pgid` (a dead leader that is not reaped yet shows as a zombie)."""
    members = []
    for pid in _pids():
        fields = _stat_fields(pid)
        if fields and int(fields[2]) == pgid and not (exclude_zombies and fields[0] == "Z"):
            members.append(pid)
    return members


def children(ppid: int) -> list[int]:
    return [pid for pid in _pids() if (fields := _stat_fields(pid)) and int(fields[1]) == ppid]


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def end_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to what is left of the group, SIGKILL after grace_s (a python-backend stub has been
    seen ignoring SIGTERM). Call it before reaping the leader: while the leader is a zombie its
    group id cannot be handed to an unrelated process."""
    if not ON_LINUX or not group_members(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_members(pgid):
            return
        time.sleep(0.1)
    signal_group(pgid, signal.SIGKILL)


def exited_unreaped(pid: int) -> bool:
    """Whether child `pid` has exited, without reaping it (waitid with WNOWAIT)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # already reaped
        return True
    return info is not None


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on host:port (SO_REUSEADDR: connections in TIME_WAIT do not count,
    a listener, SO_REUSEPORT or not, does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP `port` (any address, IPv4 and IPv6) in this network namespace."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _TCP_LISTEN and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` has open."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fd_dir.iterdir())
    except OSError:
        return inodes
    for entry in entries:
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def foreign_listeners(pid: int, port: int) -> tuple[bool, bool]:
    """(whether `pid` listens on `port`, whether another process listens there too)."""
    listening = listening_inodes(port)
    ours = socket_inodes(pid)
    return bool(listening & ours), bool(listening - ours)
