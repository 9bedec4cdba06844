"""Decide each reviewed row's label from the reviewers' answers, and write it where it is needed.

The worker template names every input after its row (``row-0-verdict``, ``row-0-label``,
``row-0-reason``), so answers never collide. A2I's crowd-form stores a radio group as
``{"<value>": true|false, ...}`` (seed 002 reads ``answerContent['rating1']['agree']``) and a text
input as a string; both are read here.

A row's label is the majority of the usable answers; a tie, or no usable answer, is recorded in
the loop report and not used. Everything is written under keys named after the loop, so a replayed
event overwrites what it wrote before and never adds a duplicate.

A label line is Model Monitor's ground-truth format plus two additions: ``eventMetadata.rowIndex``
(the row's index in its request, when not 0: rows of one request share the record ID) and
``sampling`` (``inclusionProbability`` and ``selectedBy``: how likely it was that this row came to be
reviewed, and whether the review rule or the audit sample chose it), taken from the loop's input
rows. A row without a known inclusion probability (a loop started before rows carried one, or the
capture sampling percentage was not known) gets no ``sampling``; a malformed one is reported in the
loop report, and the label is still written, without it. A batch row's ``origin`` (its input file
and line: ``{"file", "line"}``) is written into its label line and the loop report the same way.
"""

from __future__ import annotations

import datetime as dt
import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lambdas.shared import aws
from lambdas.shared.review_group import ORIGIN, SELECTED_BY, is_probability, origin_problem

GROUND_TRUTH_PREFIX = "ground-truth"
TRAINING_PREFIX = "training-rows"
REPORT_PREFIX = "loop-reports"
LABELS_AVAILABLE = "Labels Available"


class InvalidLoopEvent(ValueError):
    """An event that is not an A2I status change we can act on (parked with this reason)."""


@dataclass(frozen=True)
class LoopEvent:
    name: str
    status: str
    output_uri: str | None
    failure_reason: str | None
    time: str | None

    @classmethod
    def from_event(cls, event: Any) -> LoopEvent:
        detail = event.get("detail") if isinstance(event, dict) else None
        if not isinstance(detail, dict) or not isinstance(detail.get("humanLoopName"), str):
            raise InvalidLoopEvent("not an A2I HumanLoop Status Change event: no detail.humanLoopName")
        status = detail.get("humanLoopStatus")
        if status not in ("Completed", "Failed", "Stopped"):
            raise InvalidLoopEvent(f"human loop status {status!r} is not Completed, Failed or Stopped")
        output = (detail.get("humanLoopOutput") or {}).get("outputS3Uri")
        if status == "Completed" and not isinstance(output, str):
            raise InvalidLoopEvent("completed human loop without humanLoopOutput.outputS3Uri")
        return cls(detail["humanLoopName"], status, output, detail.get("failureReason"), event.get("time"))


@dataclass
class Verdict:
    key: str
    record_id: str
    features: list[Any]
    prediction: int
    label: int | None
    row_index: int = 0
    sampling: dict[str, Any] | None = None  # the label line's ``sampling``
    origin: dict[str, Any] | None = None  # a batch row's input file and line (``review_group.ORIGIN``)
    votes: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def ground_truth(self) -> dict[str, Any]:
        """The row's label line (needs ``label``)."""
        metadata: dict[str, Any] = {"eventId": self.record_id}
        if self.row_index:
            metadata["rowIndex"] = self.row_index
        line = {"groundTruthData": {"data": str(self.label), "encoding": "CSV"}, "eventMetadata": metadata, "eventVersion": "0"}
        if self.sampling is not None:
            line["sampling"] = self.sampling
        if self.origin is not None:
            line["origin"] = self.origin
        return line

    @property
    def note(self) -> str:
        if self.label is not None:
            return "majority" if sum(self.votes.values()) > 1 else "single reviewer"
        if len(self.votes) > 1:
            return "tie"
        return "no usable answer"


def _choice(value: Any) -> str | None:
    """A radio group ({"a": true, "b": false}) or a plain input ("a") -> the chosen value."""
    if isinstance(value, dict):
        chosen = [name for name, on in value.items() if on is True]
        return chosen[0] if len(chosen) == 1 else None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def answer_label(answer: dict[str, Any], row: dict[str, Any], label_count: int) -> tuple[int | None, str | None]:
    key, prediction = row["key"], row["prediction"]
    verdict = _choice(answer.get(f"{key}-verdict"))
    raw_label = _choice(answer.get(f"{key}-label"))
    label: int | None = None
    if raw_label is not None:
        try:
            label = int(raw_label)
        except ValueError:
            return None, f"label {raw_label!r} is not a label number"
        if not 0 <= label < label_count:
            return None, f"label {label} is outside the label set 0-{label_count - 1}"
    if verdict not in ("agree", "disagree"):
        return None, "no agree/disagree answer"
    if verdict == "agree":
        if label is not None and label != prediction:
            return None, f"agreed with prediction {prediction} but chose label {label}"
        return prediction, None
    if label is None:
        if label_count == 2:
            return 1 - prediction, None
        return None, "disagreed without choosing a label"
    if label == prediction:
        return None, f"disagreed with prediction {prediction} but chose that same label"
    return label, None


def _kind(value: Any) -> str:
    return f"a JSON {type(value).__name__}".replace("dict", "object").replace("NoneType", "null")


def _answers(output: dict[str, Any]) -> list[dict[str, Any]]:
    """Each reviewer's answer form; a missing one counts as empty (no usable answer)."""
    answers = output.get("humanAnswers") or []
    if not isinstance(answers, list):
        raise InvalidLoopEvent(f"output.json humanAnswers is {_kind(answers)}, not a list")
    forms = []
    for index, answer in enumerate(answers):
        content = answer.get("answerContent") if isinstance(answer, dict) else answer
        if content is None:
            content = {}
        if not isinstance(content, dict):
            raise InvalidLoopEvent(f"output.json humanAnswers[{index}].answerContent is {_kind(content)}, not an object")
        forms.append(content)
    return forms


def _verdict(index: int, row: Any) -> Verdict:
    """A row of the loop's input as the starter wrote it, types checked (else the event is parked)."""
    where = f"output.json inputContent.rows[{index}]"
    if not isinstance(row, dict):
        raise InvalidLoopEvent(f"{where} is {_kind(row)}, not an object")
    missing = [name for name in ("key", "recordId", "features", "prediction") if name not in row]
    if missing:
        raise InvalidLoopEvent(f"{where} lacks {', '.join(missing)}")
    for name in ("key", "recordId"):
        if not isinstance(row[name], str):
            raise InvalidLoopEvent(f"{where}.{name} is {_kind(row[name])}, not a string")
    prediction = row["prediction"]
    if isinstance(prediction, bool) or not isinstance(prediction, int):
        raise InvalidLoopEvent(f"{where}.prediction is {prediction!r}, not a label number")
    features = row["features"]
    if not isinstance(features, list) or not all(isinstance(f, dict) and "value" in f for f in features):
        raise InvalidLoopEvent(f"{where}.features is not a list of {{name, value}} objects")
    # Part of the label's join key: a label written for another row than it was given for is worse than none.
    row_index = row.get("rowIndex", 0)
    if isinstance(row_index, bool) or not isinstance(row_index, int) or row_index < 0:
        raise InvalidLoopEvent(f"{where}.rowIndex is {row_index!r}, not a whole number")
    verdict = Verdict(key=row["key"], record_id=row["recordId"], features=[f["value"] for f in features], prediction=prediction, label=None, row_index=row_index)
    verdict.sampling, problem = _sampling(row)
    if problem is not None:
        verdict.problems.append(f"sampling not written: {problem}")
    if row.get(ORIGIN) is not None:
        problem = origin_problem(row[ORIGIN])
        if problem is None:
            verdict.origin = row[ORIGIN]
        else:
            verdict.problems.append(f"origin not written: the row has {problem}")
    return verdict


def _sampling(row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the label's ``sampling`` or None, what was wrong with the row's fields or None)."""
    selected_by, probability = row.get("selectedBy"), row.get("inclusionProbability")
    if probability is None:  # an older loop's row, or the capture sampling percentage was not known
        return None, None
    if selected_by not in SELECTED_BY:
        return None, f"selectedBy is {selected_by!r}, not one of {', '.join(SELECTED_BY)}"
    if not is_probability(probability, positive=True):
        return None, f"inclusionProbability is {probability!r}, not a number in (0, 1]"
    return {"inclusionProbability": probability, "selectedBy": selected_by}, None


def decide(output: dict[str, Any], label_count: int) -> list[Verdict]:
    """One verdict per row of the loop's input, from all of its reviewers' answers.

    Raises ``InvalidLoopEvent`` for an output of the wrong shape or types: it is parked with that
    reason, since reading it again cannot help."""
    content = output.get("inputContent")
    if not isinstance(content, dict):
        raise InvalidLoopEvent(f"output.json inputContent is {_kind(content)}, not an object")
    rows = content.get("rows") or []
    if not isinstance(rows, list):
        raise InvalidLoopEvent(f"output.json inputContent.rows is {_kind(rows)}, not a list")
    answers = _answers(output)
    verdicts = []
    for index, row in enumerate(rows):
        verdict = _verdict(index, row)
        votes: Counter[int] = Counter()
        for number, answer in enumerate(answers, start=1):
            label, problem = answer_label(answer, row, label_count)
            if label is None:
                verdict.problems.append(f"answer {number}: {problem}")
            else:
                votes[label] += 1
        verdict.votes = dict(votes)
        ranked = votes.most_common()
        if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
            verdict.label = ranked[0][0]
        verdicts.append(verdict)
    return verdicts


@dataclass(frozen=True)
class ResultsSettings:
    labels_bucket: str
    report_bucket: str
    label_names: tuple[str, ...]
    event_bus: str
    event_source: str


@dataclass
class LoopResult:
    loop: str
    status: str
    labelled: int = 0
    unused: int = 0
    training_key: str | None = None
    ground_truth_key: str | None = None


def _hour_prefix(output: dict[str, Any], fallback: str | None) -> str:
    """yyyy/mm/dd/hh of the last answer's submission (stable for a loop, so replays overwrite)."""
    times = [a.get("submissionTime") for a in output.get("humanAnswers") or [] if isinstance(a, dict)]
    stamp = max((t for t in times if isinstance(t, str)), default=fallback)
    try:
        moment = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    except ValueError:
        moment = dt.datetime.now(dt.timezone.utc)
    return moment.strftime("%Y/%m/%d/%H")


def record_loop(s3: Any, events: Any, event: LoopEvent, settings: ResultsSettings) -> LoopResult:
    result = LoopResult(event.name, event.status)
    report: dict[str, Any] = {"humanLoopName": event.name, "status": event.status}
    if event.status != "Completed":
        report["failureReason"] = event.failure_reason
        _put_json(s3, settings.report_bucket, f"{REPORT_PREFIX}/{event.name}.json", report)
        return result

    bucket, key = aws.split_s3_uri(event.output_uri)
    output = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    if not isinstance(output, dict):
        raise InvalidLoopEvent(f"{event.output_uri} is not an A2I output document")
    # Everything is written under the event's loop name: an event that names another loop's
    # output (a replay under a new name) would count that loop's labels a second time.
    if output.get("humanLoopName") != event.name:
        raise InvalidLoopEvent(f"{event.output_uri} is the output of loop {output.get('humanLoopName')!r}, not of {event.name!r}")
    verdicts = decide(output, len(settings.label_names))
    labelled = [v for v in verdicts if v.label is not None]
    result.labelled, result.unused = len(labelled), len(verdicts) - len(labelled)
    report["rows"] = [
        {"recordId": v.record_id, "rowIndex": v.row_index, "sampling": v.sampling, **({"origin": v.origin} if v.origin else {}), "prediction": v.prediction, "label": v.label, "decision": v.note, "votes": {str(k): n for k, n in v.votes.items()}, "problems": v.problems}
        for v in verdicts
    ]
    report["answers"] = len(output.get("humanAnswers") or [])
    if labelled:
        result.ground_truth_key = f"{GROUND_TRUTH_PREFIX}/{_hour_prefix(output, event.time)}/{event.name}.jsonl"
        lines = [json.dumps(v.ground_truth()) for v in labelled]
        s3.put_object(Bucket=settings.labels_bucket, Key=result.ground_truth_key, Body="\n".join(lines).encode() + b"\n")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for v in labelled:
            writer.writerow([v.label, *v.features])
        result.training_key = f"{TRAINING_PREFIX}/{event.name}.csv"
        s3.put_object(Bucket=settings.labels_bucket, Key=result.training_key, Body=buffer.getvalue().encode())
    _put_json(s3, settings.report_bucket, f"{REPORT_PREFIX}/{event.name}.json", report)
    if labelled:
        _announce(events, result, settings)
    return result


def _put_json(s3: Any, bucket: str, key: str, document: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document, indent=1).encode(), ContentType="application/json")


def _announce(events: Any, result: LoopResult, settings: ResultsSettings) -> None:
    """The "Labels Available" event the retraining workflow listens for (shape in the README)."""
    detail = {
        "humanLoopName": result.loop,
        "labelCount": result.labelled,
        "unusedCount": result.unused,
        "trainingRowsS3Uri": f"s3://{settings.labels_bucket}/{result.training_key}",
        "groundTruthS3Uri": f"s3://{settings.labels_bucket}/{result.ground_truth_key}",
    }
    response = events.put_events(
        Entries=[{"Source": settings.event_source, "DetailType": LABELS_AVAILABLE, "Detail": json.dumps(detail), "EventBusName": settings.event_bus}]
    )
    if response.get("FailedEntryCount"):
        failure = response["Entries"][0]
        raise RuntimeError(f"PutEvents refused the Labels Available event: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}")
