"""A reviewer's answer form, checked on the server with review_results' own rules, in A2I's shape.

The page posts the form's values as strings (``{"row-0-verdict": "agree", "row-0-label": "1",
"row-0-reason": "..."}``). Every name must be one the task's template has (``<row key>-verdict``,
``-label``, ``-reason`` for its rows), every row needs a verdict, a label must be in the label set
(it is needed only to disagree: agreeing means the model's label), and the row's answer must be
usable by ``review_results`` (``results.answer_label``: the same
function decides the label later, so the page cannot accept what the results would discard).
The answer is stored as A2I's crowd-form stores it: a radio group as ``{"<value>": true|false}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lambdas.review.app.tasks import TaskError
from lambdas.review.results.results import answer_label

# The reason input's maxlength in a2i_templates/partials/answers.liquid.html (a test keeps them equal).
REASON_MAX_CHARS = 500
VERDICTS = ("agree", "disagree")
ANSWERS = ("verdict", "label", "reason")


class BadAnswer(TaskError):
    """An answer the server refuses (HTTP 400); ``field`` names the form input at fault. The message
    says what is wrong in plain words, after where: ``Record 2: ...`` for a record's answer, the
    field's name for anything else (``body: is not JSON``)."""

    status = 400

    def __init__(self, field: str, message: str, where: str | None = None) -> None:
        super().__init__(f"{where or field}: {message}")
        self.field = field


def _radio(chosen: str | None, values: Sequence[str]) -> dict[str, bool]:
    return {value: value == chosen for value in values}


def checked(form: Any, input_content: dict[str, Any], label_names: Sequence[str]) -> dict[str, Any]:
    """The answer content to store, in A2I's shape; ``BadAnswer`` naming the first field at fault.

    Agreeing needs no label (the label is the model's prediction); disagreeing takes the label the
    reviewer chose (with two labels, none means the other one). An answer review_results would
    not use (agree with another label, disagree with the predicted one) is refused, saying why."""
    if not isinstance(form, dict):
        raise BadAnswer("answers", "must be an object of form fields")
    rows = input_content["rows"]
    allowed = {f"{row['key']}-{answer}" for row in rows for answer in ANSWERS}
    for name, value in form.items():
        if name not in allowed:
            raise BadAnswer(name, "is not a field of this task")
        if not isinstance(value, str):
            raise BadAnswer(name, "must be a string")
    label_values = [str(value) for value in range(len(label_names))]

    def named(value: int | str) -> str:
        index = int(value)
        return f"{label_names[index]} ({value})" if 0 <= index < len(label_names) else str(value)

    content: dict[str, Any] = {}
    for number, row in enumerate(rows, start=1):
        key, where = row["key"], f"Record {number}"
        verdict = form.get(f"{key}-verdict", "")
        if verdict not in VERDICTS:
            raise BadAnswer(f"{key}-verdict", "choose Agree or Disagree", where)
        label = form.get(f"{key}-label") or None
        if label is not None and label not in label_values:
            raise BadAnswer(f"{key}-label", f"choose one of the labels {', '.join(named(v) for v in label_values)}", where)
        predicted = row["prediction"]
        if verdict == "agree" and label is not None and label != str(predicted):
            raise BadAnswer(f"{key}-label", f"you agreed with the model's {named(predicted)} but chose {named(label)}: "
                            f"choose Disagree if {label_names[int(label)]} is right", where)
        if verdict == "disagree" and label == str(predicted):
            raise BadAnswer(f"{key}-label", f"you disagreed with the model but chose the label it predicted, {named(predicted)}: "
                            "choose the correct label, or Agree", where)
        if verdict == "disagree" and label is None and len(label_names) != 2:
            raise BadAnswer(f"{key}-label", "you disagreed with the model: choose the correct label", where)
        reason = form.get(f"{key}-reason", "")
        if len(reason) > REASON_MAX_CHARS:
            raise BadAnswer(f"{key}-reason", f"the reason is {len(reason)} characters long; keep it to {REASON_MAX_CHARS}", where)
        answer = {f"{key}-verdict": _radio(verdict, VERDICTS), f"{key}-label": _radio(label, label_values), f"{key}-reason": reason}
        _, problem = answer_label(answer, row, len(label_names))  # review_results' own rule, the last word
        if problem is not None:
            raise BadAnswer(f"{key}-label", problem, where)
        content.update(answer)
    return content
