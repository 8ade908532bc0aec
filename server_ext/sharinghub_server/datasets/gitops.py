"""git for pull jobs: clone, fetch and check out with a token that never lands in a URL, a
``.git/config`` or a process listing.

The token travels in the environment, and only a credential helper scoped to the clone URL's
``scheme://host[:port]/`` hands it out: git asks for credentials per host, so a redirect to
another host gets none (an ``http.extraHeader``, even a URL-scoped one, is matched once against
the first URL and then sent with every request, wherever a redirect led).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from ..jobs import Cancelled, JobError
from .processes import stop_group

TOKEN_VAR = "SHARINGHUB_GIT_TOKEN"
# answers ``get`` only; ``store`` and ``erase`` are ignored, so nothing is written anywhere
_HELPER = (f'!f() {{ test "$1" = get && echo username=oauth2 && echo "password=${TOKEN_VAR}"; '
           "}; f")


def git_env(token: str | None, url: str | None = None,
            config: list[tuple[str, str]] | None = None) -> dict[str, str]:
    """Environment for git: no prompts, no credential helper of the user's (it would store the
    token), and the token for ``url``'s host only, if there is one; ``config`` adds settings
    (as ``-c`` would, but for the processes git starts too: a local push's receive-pack)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))
           and k not in ("GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS", TOKEN_VAR)}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_CONFIG_NOSYSTEM": "1"})
    # an empty value drops the helpers configured before
    settings = [("credential.helper", ""), *(config or [])]
    origin = _origin(url) if token else None
    if token and origin:
        settings.append((f"credential.{origin}.helper", _HELPER))
        env[TOKEN_VAR] = token
    env["GIT_CONFIG_COUNT"] = str(len(settings))
    for i, (key, value) in enumerate(settings):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
    return env


def _origin(url: str | None) -> str | None:
    """``scheme://host[:port]/`` of an http(s) URL (None for a local path)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/"  # no user info


def run_git(args: list[str], *, cwd: Path | None, token: str | None, url: str | None = None,
            timeout: float = 600, cancel: threading.Event | None = None,
            extra_env: dict[str, str] | None = None,
            config: list[tuple[str, str]] | None = None) -> str:
    """Run git in its own process group; with ``cancel``, a set event stops the group (git
    and its remote helper) and raises Cancelled within about 0.1 s. ``extra_env`` adds
    variables (a commit's author, say), ``config`` settings (see :func:`git_env`)."""
    env = git_env(token, url, config)
    env.update(extra_env or {})
    proc = subprocess.Popen(["git", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            if cancel is not None and cancel.is_set():
                stop_group(proc)
                proc.communicate()
                raise Cancelled from None
            if time.monotonic() > deadline:
                stop_group(proc)
                proc.communicate()
                raise JobError(f"git {args[0]} timed out") from None
    if proc.returncode != 0:
        raise JobError(f"git {args[0]} failed: {_clean(err, token, out)}")
    return out.strip()


def _clean(stderr: str, token: str | None, stdout: str = "") -> str:
    """git's last meaningful line, with no secret in it: the refs a ``push --porcelain``
    rejected (``!`` lines on stdout), else the last ``fatal:``/``error:`` line."""
    rejected = [ln.split("\t") for ln in stdout.splitlines() if ln.startswith("!\t")]
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    text = next((ln for ln in reversed(lines) if ln.startswith(("fatal:", "error:"))),
                lines[-1] if lines else "unknown error")
    if rejected:
        text = "; ".join(f"{r[1].partition(':')[2] or r[1]} {r[2] if len(r) > 2 else ''}"
                         .strip() for r in rejected if len(r) > 1)
    elif "Authentication failed" in text or "could not read Username" in text or "401" in text:
        text = "the repository refused the credentials (check the GitLab token)"
    elif "403" in text:
        text = "the repository refused the push (403): the token's user may not push there"
    if token:
        text = text.replace(token, "***")
    return text.removeprefix("fatal: ").removeprefix("error: ")


def clone(url: str, dest: Path, *, token: str | None,
          cancel: threading.Event | None = None) -> None:
    run_git(["clone", "--quiet", "--no-checkout", url, str(dest)], cwd=None, token=token,
            url=url, cancel=cancel)


def fetch(dest: Path, url: str, *, token: str | None,
          cancel: threading.Event | None = None) -> None:
    """Fetch from ``origin`` (whose URL is ``url``: the token is scoped to it)."""
    run_git(["fetch", "--quiet", "--tags", "--force", "origin"], cwd=dest, token=token,
            url=url, cancel=cancel)


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
