"""Who did something, and with which code: recorded with every version driftloop writes."""

from __future__ import annotations

import getpass
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GitInfo", "current_user", "git_info"]


def current_user() -> str:
    """``DRIFTLOOP_USER`` if set, else the operating-system user."""
    user = os.environ.get("DRIFTLOOP_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


@dataclass(frozen=True)
class GitInfo:
    sha: str
    dirty: bool


def git_info(path: Path) -> GitInfo | None:
    """The commit and dirty flag of the git work tree holding ``path``, if it is in one."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if sha.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return GitInfo(sha.stdout.strip(), bool(status.stdout.strip()))
