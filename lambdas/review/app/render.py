"""A task as the reviewers' page shows it: the A2I worker template of ``review.template``, rendered.

The page shows exactly what an A2I reviewer sees (the same template and partials in
``a2i_templates/``: prediction, feature table, attribution bars, answers with the same input names),
rendered here with python-liquid. Every output in the templates is escaped or forced to a number
(tests/lambdas/review/test_worker_template.py checks that), so values a caller controls arrive as
text. What only A2I's page has is turned into plain HTML: crowd-html-elements' script is dropped
(the page's CSP allows only its own script), the inline <style> is dropped (the page links the
same partials' CSS files), ``<crowd-form>`` becomes the page's own form (``app.js``), and
``<crowd-instructions>`` a ``<details>`` element, and the bars' widths data attributes; numbers in
the tables are marked as such and feature names may break after an underscore (``_readable``).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

# a2i_templates/ sits next to the ``lambdas`` package: in the repository, and in the functions' code.
TEMPLATES = Path(__file__).resolve().parents[3] / "a2i_templates"
# A task UI is one HTML document: parts the templates share (a2i_templates/partials/) are written
# into it where a line says [[include partials/<file>]].
_INCLUDE = re.compile(r"^[ \t]*\[\[include (partials/[\w.-]+)\]\]\n", re.MULTILINE)
# The partials' style sheets, which the page links instead of the templates' inline <style>.
STYLESHEETS = ("partials/record.css", "partials/attributions.css")

_A2I_ONLY = [
    (re.compile(r"<script\b[^>]*>.*?</script>\s*", re.S), ""),
    (re.compile(r"<style>.*?</style>\s*", re.S), ""),
    (re.compile(r"</?crowd-form>"), ""),
    (re.compile(r"<crowd-instructions\b[^>]*>"), '<details class="instructions"><summary>Instructions</summary>'),
    (re.compile(r"</crowd-instructions>"), "</details>"),
    (re.compile(r"<(/?)(short-summary|detailed-instructions)>"), r"<\1div>"),
]

# The bars' widths: a style attribute in A2I's page, data for the page's script here (its CSP
# applies no inline style; app.js sets the width through the CSSOM). The templates write a number.
_BAR_WIDTH = re.compile(r'style="width: (-?[0-9.]+)%"')
# Table cells the page's style keeps readable on a phone (app.css): a value that is a number is
# marked so it never breaks, and a feature name may break only after an underscore (<wbr>). The
# cells' text is escaped already (no "<" in it; no entity holds "_").
_CELL = re.compile(r'<td class="(value|feature|name)">([^<]*)</td>')
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def _readable(cell: re.Match[str]) -> str:
    kind, text = cell.group(1), cell.group(2)
    if kind == "value":
        return f'<td class="value number">{text}</td>' if _NUMBER.match(text.strip()) else cell.group(0)
    return f'<td class="{kind}">{text.replace("_", "_<wbr>")}</td>'


def template_text(name: str) -> str:
    """The worker template ``a2i_templates/<name>.liquid.html`` with its partials written in."""
    return _INCLUDE.sub(lambda match: (TEMPLATES / match.group(1)).read_text(), (TEMPLATES / f"{name}.liquid.html").read_text())


@cache
def _template(name: str) -> Any:
    import liquid  # only the API function needs it (its own layer)

    text = template_text(name)
    for pattern, replacement in _A2I_ONLY:
        text = pattern.sub(replacement, text)
    return liquid.Template(text)


def task_html(template: str, input_content: dict[str, Any]) -> str:
    """The task's body for the page: instructions, then one section per record with its inputs."""
    html = _BAR_WIDTH.sub(r'data-width="\1"', _template(template).render(task={"input": input_content}))
    return _CELL.sub(_readable, html).strip()
