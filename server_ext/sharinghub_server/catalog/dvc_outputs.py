"""DVC outputs read from a repository's ``*.dvc`` pointer files and ``dvc.lock``, without DVC.

The catalog only needs what these small YAML files say (path, hash, size, file count, remote),
so reading them directly keeps the crawler free of the heavy ``dvc`` import.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import yaml

from .frontmatter import load_yaml

DVC_CONFIG = ".dvc/config"
_SECTION = re.compile(
    r"""^\s*\[\s*(?:'(?P<q1>[^']*)'|"(?P<q2>[^"]*)"|(?P<plain>[^\]]*))\s*\]\s*$""")


@dataclass(frozen=True)
class DvcOutput:
    path: str  # relative to the repository root
    md5: str | None  # file md5, or the ``.dir`` hash of a directory
    size: int | None
    nfiles: int | None
    legacy_hash: bool  # no ``hash: md5`` field: DVC 2's md5-dos2unix layout on the remote
    remote: str | None  # the output's own remote, if it names one
    source: str  # the pointer file it came from

    @property
    def is_dir(self) -> bool:
        return bool(self.md5 and self.md5.endswith(".dir"))


def is_dvc_file(path: str) -> bool:
    """Files the crawler must read to know a project's DVC outputs."""
    name = posixpath.basename(path)
    return (path.endswith(".dvc") and name != ".dvc") or name == "dvc.lock" or path == DVC_CONFIG


def parse_config(text: str) -> tuple[str | None, dict[str, str]]:
    """``.dvc/config`` (configobj syntax) → (default remote name, {remote name: url})."""
    default: str | None = None
    remotes: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            section = (m["q1"] or m["q2"] or m["plain"] or "").strip()
            continue
        if "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        value = value.strip("'\"")
        if section == "core" and key == "remote":
            default = value
        rm = re.fullmatch(r'remote\s+"([^"]+)"', section)
        if rm and key == "url":
            remotes[rm.group(1)] = value
    return default, remotes


def parse_outputs(files: dict[str, str]) -> tuple[list[DvcOutput], list[str]]:
    """Outputs of every pointer file in ``files`` (path → text), and problems met."""
    outputs: list[DvcOutput] = []
    problems: list[str] = []
    for path in sorted(files):
        if path == DVC_CONFIG:
            continue
        try:
            data = load_yaml(files[path]) or {}
        except yaml.YAMLError as exc:
            problems.append(f"{path} is not valid YAML: {str(exc).splitlines()[0]}")
            continue
        except Exception as exc:  # a constructor's: !!bool maybe (KeyError), 2020-02-30...
            problems.append(f"{path}: a value cannot be read ({type(exc).__name__})")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path} is not a DVC file")
            continue
        base = posixpath.dirname(path)
        if posixpath.basename(path) == "dvc.lock":
            stages = data.get("stages")
            outs = [o for stage in (stages.values() if isinstance(stages, dict) else ())
                    if isinstance(stage, dict) and isinstance(stage.get("outs"), list)
                    for o in stage["outs"]]
        else:
            outs = data.get("outs") if isinstance(data.get("outs"), list) else []
        for out in outs:
            if not isinstance(out, dict) or not out.get("path"):
                problems.append(f"{path}: an output without a path")
                continue
            outputs.append(DvcOutput(
                path=posixpath.normpath(posixpath.join(base, str(out["path"]))),
                md5=str(out["md5"]) if out.get("md5") else None,
                size=int(out["size"]) if isinstance(out.get("size"), int) else None,
                nfiles=int(out["nfiles"]) if isinstance(out.get("nfiles"), int) else None,
                legacy_hash=out.get("hash") != "md5",
                remote=str(out["remote"]) if out.get("remote") else None,
                source=path,
            ))
    return outputs, problems


def remote_location(output: DvcOutput, remote_url: str) -> str | None:
    """Where the output's content lives on the remote (DVC 3 layout ``files/md5/xx/rest``,
    DVC 2 layout ``xx/rest`` for outputs without ``hash: md5``)."""
    if not output.md5 or len(output.md5) < 3:
        return None
    if not urlsplit(remote_url).scheme:
        # a folder remote: an absolute path is a file URI (served as it is, where a bare
        # path would read as a path on this server); a relative one (to the repository's
        # .dvc/ folder) means nothing outside a checkout
        if not remote_url.startswith("/"):
            return None
        remote_url = PurePosixPath(remote_url).as_uri()
    base = remote_url.rstrip("/")
    prefix = "" if output.legacy_hash else "files/md5/"
    return f"{base}/{prefix}{output.md5[:2]}/{output.md5[2:]}"
