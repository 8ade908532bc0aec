"""What a notebook would run of an HTML output: live ``<script>`` elements, ``on*=``
attributes and ``javascript:`` URLs, found with the standard library's ``html.parser``.

folium maps come as an ``<iframe srcdoc=...>`` whose scripts are folium's own: there, the
strings of its scripts (which Leaflet may set as innerHTML: popups, tooltips) are checked
the same way, and nothing of the server's may sit in the scripts outside strings.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "poster", "background",
              "data", "srcset"}
_BAD_SCHEMES = ("javascript:", "vbscript:", "data:text/html")
_TEMPLATE_LITERAL = re.compile(r"`((?:[^`\\]|\\.)*)`", re.S)
_JSON_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.scripts: list[str] = []
        self.srcdocs: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        for name, value in attrs:
            value = value or ""
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
            if name in _URL_ATTRS and squeezed.startswith(_BAD_SCHEMES):
                self.problems.append(f"<{tag} {name}={value!r}>")
            if name == "srcdoc":
                self.srcdocs.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def scan(document: str) -> tuple[list[str], list[str], list[str]]:
    """(problems, script texts, srcdoc documents) of one HTML document."""
    parser = _Scan()
    parser.feed(document)
    parser.close()
    return parser.problems, parser.scripts, parser.srcdocs


def live_problems(document: str, marker: str = "alert(") -> list[str]:
    """Everything in ``document`` that would run: empty when it is safe.

    Outside iframes no ``<script>`` at all is allowed; inside a folium ``srcdoc``, scripts
    are allowed, but each string in them (template literal or JSON string) must be safe
    HTML, and ``marker`` (what the hostile values call) must appear neither in a template
    literal's ``${...}`` nor in the scripts outside strings."""
    problems, scripts, srcdocs = scan(document)
    problems += [f"<script>{s[:60]!r}" for s in scripts]
    for inner in srcdocs:
        inner_problems, inner_scripts, _ = scan(inner)
        problems += inner_problems
        for script in inner_scripts:
            strings = [(lit, "template literal") for lit in _TEMPLATE_LITERAL.findall(script)]
            rest = _TEMPLATE_LITERAL.sub("``", script)
            strings += [(json.loads(f'"{lit}"'), "string") for lit in _JSON_STRING.findall(rest)]
            rest = _JSON_STRING.sub('""', rest)
            for text, kind in strings:  # any of them may end up as innerHTML
                if kind == "template literal" and any(
                        marker in expr for expr in re.findall(r"\$\{([^}]*)\}", text)):
                    problems.append(f"{marker!r} in a template literal's ${{...}}")
                lit_problems, lit_scripts, _ = scan(text)
                problems += lit_problems + [f"<script> in a map {kind}: {s[:60]!r}"
                                            for s in lit_scripts]
            if marker in rest:
                problems.append(f"{marker!r} in a map script outside a string")
    return problems
