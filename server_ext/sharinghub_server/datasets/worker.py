"""The DVC worker process: ``python -m sharinghub_server.datasets.worker`` reads a JSON
request on stdin and runs ``dvc pull`` (or checkout) through DVC's Python API.

A separate process keeps ``import dvc`` out of the server, lets the job be cancelled by
killing it, and receives remote credentials on stdin: never in argv, the environment of
other processes, or a file in the workspace.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    request = json.load(sys.stdin)
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        with Repo(request["repo"], config={"remote": request.get("remotes") or {}}) as repo:
            if request.get("action") == "checkout":
                repo.checkout(force=True)
            else:
                repo.pull(jobs=request.get("jobs"), force=True)
    except DvcException as exc:
        print(json.dumps({"error": _line(exc)}), flush=True)
        return 1
    except Exception as exc:  # the parent turns this into the job's one-line error
        print(json.dumps({"error": f"{type(exc).__name__}: {_line(exc)}"}), flush=True)
        return 1
    print(json.dumps({"ok": True}), flush=True)
    return 0


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {' '.join(str(cause).split())}"
    return text[:400]


if __name__ == "__main__":
    sys.exit(main())
