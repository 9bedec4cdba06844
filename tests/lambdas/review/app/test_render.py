"""The page's task is A2I's task: the same template and partials, minus what only A2I's page has."""

from __future__ import annotations

import re

import liquid
import pytest

from lambdas.review.app.render import task_html, template_text
from stacks.shared.config import REVIEW_TEMPLATES
from tests.lambdas.review.test_worker_template import realistic_task


@pytest.mark.parametrize("template", REVIEW_TEMPLATES)
def test_the_page_renders_the_a2i_task_with_the_same_inputs_and_records(template: str) -> None:
    task = realistic_task(template)
    a2i = liquid.Template(template_text(template)).render(task={"input": task})
    page = task_html(template, task)
    inputs = re.compile(r"<input [^>]*>")
    assert inputs.findall(page) == inputs.findall(a2i) and len(inputs.findall(page)) == 3 * (2 + 2 + 1)
    same = page.replace('<td class="value number">', '<td class="value">').replace("_<wbr>", "_")  # the page's readability marks
    for pattern in (r'<section class="record" id="[^"]+">', r'<td class="value">[^<]*</td>', r'<td class="(?:feature|name)">[^<]*</td>',
                    r'class="bar (?:positive|negative)"', r"<summary>[^<]*</summary>"):
        assert re.findall(pattern, a2i) == [m for m in re.findall(pattern, same) if m != "<summary>Instructions</summary>"], pattern
    # What only A2I's page has is gone: its script, the inline style, the crowd elements.
    assert "<script" not in page and "<style" not in page and "crowd-" not in page and "style=" not in page
    assert page.count('<details class="instructions"><summary>Instructions</summary>') == 1
    widths = re.findall(r'style="width: ([0-9.]+)%"', a2i)
    assert widths and re.findall(r'data-width="([0-9.]+)"', page) == widths


def test_numbers_are_marked_and_feature_names_break_only_after_an_underscore() -> None:
    """So that a phone's narrow table never splits 0.06266 or worst_perimeter mid-token (app.css)."""
    task = realistic_task("low_confidence")
    task["rows"][0]["features"][:4] = [{"name": "worst_perimeter", "value": 0.06266}, {"name": "a", "value": "-1.5e-3"},
                                        {"name": "b", "value": "12 cm"}, {"name": "<i>_x</i>", "value": "<b>1</b>"}]
    page = task_html("low_confidence", task)
    assert '<td class="name">worst_<wbr>perimeter</td><td class="value number">0.06266</td>' in page
    assert '<td class="value number">-1.5e-3</td>' in page and '<td class="value">12 cm</td>' in page
    assert '<td class="name">&lt;i&gt;_<wbr>x&lt;/i&gt;</td><td class="value">&lt;b&gt;1&lt;/b&gt;</td>' in page  # still escaped text
    assert re.findall(r'<td class="feature">[^<]*_[^<]*</td>', page) == []  # every underscore of a name in the bars is followed by <wbr>
