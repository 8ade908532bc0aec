"""YAML front matter of a README: ``---`` block first, markdown body after.

READMEs are written by anyone who can push to a project, so reading one is bounded: at most
:data:`MAX_README_CHARS` of it are read, a front matter longer than
:data:`MAX_FRONT_MATTER_CHARS` is not parsed, and a parsed one is refused (before any Python
value is built from it) when it nests deeper than :data:`MAX_DEPTH` levels, contains itself,
or when its aliases would expand it far beyond its text (a "billion laughs"). Each refusal is
a problem the crawl reports; the project still becomes an item.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

#: libyaml's parser (PyYAML's C binding) with the same safe constructors: about ten times
#: faster than the pure-Python one, which every crawled README would otherwise go through
#: (twice: the GitLab source checks for a license key too)
_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", None)

_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)",
                           re.DOTALL | re.MULTILINE)

#: characters of a README read (the rest is not: its description stops there)
MAX_README_CHARS = 512 * 1024
#: characters of front matter parsed (real ones are a few KiB)
MAX_FRONT_MATTER_CHARS = 256 * 1024
#: characters of another YAML file parsed (``dvc.lock``, ``*.dvc``)
MAX_YAML_CHARS = 4 * 1024 * 1024
#: nesting of YAML collections (an mlm card nests about 6 deep; JSON stores refuse ~250)
MAX_DEPTH = 64
#: characters of a document libyaml refused that the pure-Python parser reads again (for
#: its verdict and messages): it takes up to seconds on a few hundred KiB; beyond this,
#: libyaml's verdict stands
PURE_PYTHON_MAX_CHARS = 32 * 1024
#: what aliases may add to a document: its values, expanded, weigh at most this many times
#: its text plus :data:`ALIAS_SLACK` (without aliases a document never weighs more than
#: about 2.5 times its text)
ALIAS_FACTOR = 3
ALIAS_SLACK = 16 * 1024


class YAMLRefused(yaml.YAMLError):
    """A YAML document refused before its values are built: too big, too deep, recursive,
    or an alias bomb."""


def read_readme(text: str | None) -> tuple[dict[str, Any], str, list[str]]:
    """Split a README into (front matter, body, problems). Never raises: a README too long
    is cut, broken or refused YAML gives an empty mapping and a problem, so the project
    still becomes an item."""
    if not text:
        return {}, "", []
    problems: list[str] = []
    if len(text) > MAX_README_CHARS:
        text = text[:MAX_README_CHARS]
        problems.append(f"README is longer than {MAX_README_CHARS:,} characters: only the "
                        f"first {MAX_README_CHARS:,} are read (the item's description stops "
                        "there)")
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text.strip(), problems
    body = text[match.end():].strip()
    source = match.group(1)
    if len(source) > MAX_FRONT_MATTER_CHARS:
        problems.append(f"README front matter ignored: more than "
                        f"{MAX_FRONT_MATTER_CHARS // 1024} KiB")
        return {}, body, problems
    try:
        data = load_yaml(source, max_chars=MAX_FRONT_MATTER_CHARS)
    except YAMLRefused as exc:
        problems.append(f"README front matter ignored: {exc}")
        return {}, body, problems
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.append(f"README front matter is not valid YAML{where}: {problem}")
        return {}, body, problems
    except RecursionError:  # the pure-Python composer, on what libyaml refused as too deep
        problems.append(f"README front matter ignored: nested deeper than {MAX_DEPTH} levels")
        return {}, body, problems
    except Exception as exc:  # a constructor's: 2020-02-30, !!int abc, 5,000 digits...
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        problems.append(f"README front matter ignored: a value cannot be read "
                        f"({type(exc).__name__}{': ' + message if message else ''})")
        return {}, body, problems
    if data is None:
        return {}, body, problems
    if not isinstance(data, dict):
        problems.append(f"README front matter is a {type(data).__name__}, not a mapping")
        return {}, body, problems
    return {str(k): v for k, v in data.items()}, body, problems


def parse_readme(text: str | None) -> tuple[dict[str, Any], str, str | None]:
    """Split a README into (front matter, body, problem): :func:`read_readme` with its
    problems as one line (None without any)."""
    meta, body, problems = read_readme(text)
    return meta, body, "; ".join(problems) or None


def load_yaml(text: str, *, max_chars: int = MAX_YAML_CHARS) -> Any:
    """``yaml.safe_load``, faster and bounded: libyaml parses; when it refuses a document,
    the pure-Python parser decides, so that what is accepted and the error messages (shown
    in the crawl status) stay the pure-Python ones (up to :data:`PURE_PYTHON_MAX_CHARS`:
    beyond, libyaml's verdict stands). A document longer than ``max_chars``,
    nested deeper than :data:`MAX_DEPTH`, containing itself or whose aliases expand it far
    beyond its text raises :class:`YAMLRefused` before any value is built; values no
    constructor accepts raise what the constructor raises (ValueError...)."""
    if len(text) > max_chars:
        raise YAMLRefused(f"more than {max_chars // 1024} KiB")
    if _FAST_LOADER is not None:
        try:
            return _load(_FAST_LOADER, text)
        except YAMLRefused:
            raise
        except yaml.YAMLError as exc:
            # libyaml stops at 1,000 levels; the pure-Python scanner would take time
            # quadratic in the depth to say the same (minutes at 100,000)
            if "maximum nesting depth" in str(getattr(exc, "problem", "") or "") or (
                    _flow_depth(text) > MAX_DEPTH):
                raise YAMLRefused(f"nested deeper than {MAX_DEPTH} levels") from None
            if len(text) > PURE_PYTHON_MAX_CHARS:
                raise
    return _load(yaml.SafeLoader, text)


_BRACKETS = re.compile(r"[\[\]{}]")


def _flow_depth(text: str) -> int:
    """How deep the flow collections of ``text`` nest, counting brackets (quoted ones too):
    enough to spare the pure-Python parser a document it would take seconds to refuse as
    too deep (its scanner's time is quadratic in the depth)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        if m.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    break
        elif depth:
            depth -= 1
    return deepest


def _load(loader_class: Any, text: str) -> Any:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check(node, ALIAS_FACTOR * len(text) + ALIAS_SLACK)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check(root: Any, budget: int) -> None:
    """Refuse a composed document that nests deeper than :data:`MAX_DEPTH`, contains itself
    or weighs more than ``budget`` once its aliases are expanded; replace lone surrogates
    (``"\\ud800"`` escapes) in its scalars, pairs by the character they encode. One pass over
    the distinct nodes: an alias's expanded weight is computed once."""
    if isinstance(root, ScalarNode):
        _clean_scalar(root)
        return
    done: dict[int, int] = {}  # id(node) -> expanded weight
    open_ = {id(root)}
    # frames: [node, children, next child, weight so far]
    frames: list[list[Any]] = [[root, _children(root), 0, 2]]
    while frames:
        frame = frames[-1]
        kids = frame[1]
        i = frame[2]
        if i == len(kids):
            frames.pop()
            open_.discard(id(frame[0]))
            done[id(frame[0])] = frame[3]
            if frames:
                frames[-1][3] += frame[3]
                if frames[-1][3] > budget:
                    raise _alias_bomb()
            continue
        frame[2] = i + 1
        child = kids[i]
        if isinstance(child, ScalarNode):
            frame[3] += len(_clean_scalar(child)) + 2
            continue
        key = id(child)
        if key in done:
            frame[3] += done[key]
            if frame[3] > budget:
                raise _alias_bomb()
            continue
        if key in open_:
            raise YAMLRefused("a value contains itself (a recursive alias)")
        if len(frames) >= MAX_DEPTH:
            raise YAMLRefused(f"nested deeper than {MAX_DEPTH} levels")
        open_.add(key)
        frames.append([child, _children(child), 0, 2])
    if done[id(root)] > budget:
        raise _alias_bomb()


def _alias_bomb() -> YAMLRefused:
    return YAMLRefused("more values than its text holds once its aliases are expanded "
                       "(an alias bomb)")


def _children(node: Any) -> list[Any]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return node.value


def _clean_scalar(node: ScalarNode) -> str:
    value = node.value
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # surrogates: a pair becomes its character, a lone one U+FFFD
            value = node.value = value.encode("utf-16", "surrogatepass").decode(
                "utf-16", "replace")
    return value


def with_front_matter(text: str | None, yaml_text: str) -> str:
    """``text`` (a README) with its front matter replaced by ``yaml_text`` (added if it had
    none); the body is kept byte for byte."""
    text = text or ""
    match = _FRONT_MATTER.match(text)
    body = text[match.end():] if match else text
    if body and not body.startswith(("\n", "\r\n")) and match is None:
        body = "\n" + body
    return f"---\n{yaml_text}---\n{body}"
