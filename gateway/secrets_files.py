"""Secrets the gateway reads from files: the admin token and Triton's model-control key.

A secret never comes from an environment variable (children inherit the environment, and
`/proc/<pid>/environ` and crash reports show it). A secret file must be a regular file that
no other user can read (group-readable only when explicitly allowed, for Kubernetes secret
volumes mounted with an fsGroup) and hold at least MIN_SECRET_CHARS characters.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MIN_SECRET_CHARS = 32
MAX_SECRET_BYTES = 4096  # a secret file is one line; anything larger is a wrong path
# Environment variables that must never reach a child process (Triton, its python stubs, the
# Whisper workers): the admin token's old env path and anything the operator might name so.
SECRET_ENV_NAMES = ("MODERATION_ADMIN_TOKEN", "MODERATION_TRITON_CONTROL_KEY")


class SecretFileError(ValueError):
    """A secret file is missing, readable by others, or too short; the message says which."""


def read_secret_file(path: str | Path, what: str, allow_group_readable: bool = False) -> str:
    path = Path(path)
    try:
        info = path.stat()
    except OSError as err:
        raise SecretFileError(f"{what} file {path}: {err.strerror or err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretFileError(f"{what} file {path} is not a regular file")
    forbidden = stat.S_IRWXO | stat.S_IWGRP | (0 if allow_group_readable else stat.S_IRGRP)
    if info.st_mode & forbidden:
        raise SecretFileError(
            f"{what} file {path} has mode {stat.S_IMODE(info.st_mode):o}: other users can read or change it; "
            f"run `chmod 600 {path}`" + ("" if allow_group_readable else
                                          " (or allow group-readable secret files with --secret-files-group-readable)"))
    if info.st_size > MAX_SECRET_BYTES:
        raise SecretFileError(f"{what} file {path} holds {info.st_size} bytes; a secret is one short line")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise SecretFileError(f"{what} file {path}: cannot read it: {err}") from None
    if len(value) < MIN_SECRET_CHARS:
        raise SecretFileError(
            f"{what} in {path} has {len(value)} characters; at least {MIN_SECRET_CHARS} are needed "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return value


def generate_secret() -> str:
    """43 URL-safe characters from 32 random bytes."""
    return secrets.token_urlsafe(32)


def write_secret_file(path: str | Path, value: str) -> Path:
    """Creates the file owner-only from the start (no window where it is world-readable)."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not change an existing file's
    return path


def without_secrets(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in SECRET_ENV_NAMES}


def drop_secret_environment(environ=os.environ) -> list[str]:
    """Removes secret variables from this process's environment, so no child started later
    (multiprocessing workers inherit it) can see them; returns the names it removed."""
    removed = [name for name in SECRET_ENV_NAMES if name in environ]
    for name in removed:
        del environ[name]
    return removed
