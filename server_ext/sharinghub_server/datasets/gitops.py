"""git for pull jobs: clone, fetch and check out with a token that never lands in a URL, a
``.git/config`` or a process listing (it travels in ``GIT_CONFIG_*`` environment variables)."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from pathlib import Path

from ..jobs import Cancelled, JobError


def git_env(token: str | None) -> dict[str, str]:
    """Environment for git: no prompts, and the token as an HTTP header if there is one."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true",
           "GIT_CONFIG_NOSYSTEM": "1"}
    for key in [k for k in env if k.startswith("GIT_CONFIG_KEY_") or
                k.startswith("GIT_CONFIG_VALUE_") or k == "GIT_CONFIG_COUNT"]:
        del env[key]
    if token:
        basic = base64.b64encode(f"oauth2:{token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                    "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"})
    return env


def run_git(args: list[str], *, cwd: Path | None, token: str | None,
            timeout: float = 600, cancel: threading.Event | None = None) -> str:
    """Run git; with ``cancel``, a set event kills it (and raises Cancelled) within 0.1 s."""
    proc = subprocess.Popen(["git", *args], cwd=cwd, env=git_env(token), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                proc.kill()
                proc.communicate()
                raise Cancelled from None
            if time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                raise JobError(f"git {args[0]} timed out") from None
    if proc.returncode != 0:
        raise JobError(f"git {args[0]} failed: {_clean(err, token)}")
    return out.strip()


def _clean(stderr: str, token: str | None) -> str:
    """git's last meaningful line, with no secret in it."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = next((ln for ln in reversed(lines) if ln.startswith(("fatal:", "error:"))),
                lines[-1] if lines else "unknown error")
    if "Authentication failed" in text or "could not read Username" in text or "401" in text:
        text = "the repository refused the credentials (check the GitLab token)"
    if token:
        text = text.replace(token, "***")
    return text.removeprefix("fatal: ").removeprefix("error: ")


def clone(url: str, dest: Path, *, token: str | None,
          cancel: threading.Event | None = None) -> None:
    run_git(["clone", "--quiet", "--no-checkout", url, str(dest)], cwd=None, token=token,
            cancel=cancel)


def fetch(dest: Path, *, token: str | None, cancel: threading.Event | None = None) -> None:
    run_git(["fetch", "--quiet", "--tags", "--force", "origin"], cwd=dest, token=token,
            cancel=cancel)


def resolve(dest: Path, rev: str) -> str:
    """The commit a branch, tag or sha names (a branch as the remote has it)."""
    for candidate in (f"origin/{rev}", f"refs/tags/{rev}", rev):
        try:
            return run_git(["rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
                           cwd=dest, token=None)
        except JobError:
            continue
    raise JobError(f"no revision {rev!r} in the repository")


def head(dest: Path) -> str | None:
    try:
        return run_git(["rev-parse", "HEAD"], cwd=dest, token=None)
    except JobError:
        return None


def is_dirty(dest: Path) -> bool:
    return bool(run_git(["status", "--porcelain", "--untracked-files=no"], cwd=dest, token=None))


def checkout(dest: Path, commit: str) -> None:
    run_git(["checkout", "--quiet", "--force", commit], cwd=dest, token=None)


def default_branch(dest: Path) -> str:
    try:
        ref = run_git(["symbolic-ref", "--short", "refs/remotes/origin/HEAD"], cwd=dest,
                      token=None)
        return ref.removeprefix("origin/")
    except JobError:
        return "main"


def exclude(dest: Path, pattern: str) -> None:
    """Keep a file of ours out of ``git status`` without touching tracked files."""
    info = dest / ".git" / "info"
    info.mkdir(parents=True, exist_ok=True)
    path = info / "exclude"
    lines = path.read_text().splitlines() if path.exists() else []
    if pattern not in lines:
        path.write_text("\n".join([*lines, pattern]) + "\n")
