"""The evaluation's strata when the review rule is known: a row belongs to the stratum the capture
filter's rule or audit draw put it in, whatever its label's ``selectedBy`` says, so labels of every
prediction (``selectedBy`` ``all``) represent the rule's and the audit's rows; and what the page says
of the weighted figures, the response and the estimate's calibration check.

The period is the committed held-out sample (114 rows, the bundled model's scores), the rule the
band 0.1 < score < 0.9 with a 2 % audit, the constraints and the estimate's calibration the bundled
model's test set (as ``make quality-report`` has them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lambdas.capture.records import ParseOptions
from lambdas.capture.selection import Audit, SelectionRule
from lambdas.monitoring.quality import documents, labels as ground_truth, report
from lambdas.monitoring.quality.evaluation import LABELLED, WEIGHTED, Captured, evaluate
from stacks.shared.default_model import TEST_CSV, TEST_SCORES_CSV
from stacks.shared.default_model.captures import HELD_OUT, SAMPLES_DIR

RULE = SelectionRule("band", 0.1, 0.9)
AUDIT = Audit(2.0)
REVIEWED = {"inclusionProbability": 1.0, "selectedBy": "rule"}
EVERY_ROW = {"inclusionProbability": 1.0, "selectedBy": "all"}


@pytest.fixture(scope="module")
def sample() -> tuple[bytes, list[str], np.ndarray, np.ndarray]:
    """(the capture file, event IDs, scores, true labels) of the held-out sample's rows, in order."""
    body = (SAMPLES_DIR / HELD_OUT).read_bytes()
    records = [json.loads(line) for line in body.decode().splitlines()]
    ids = [r["eventMetadata"]["eventId"] for r in records]
    scores = np.array([float(r["captureData"]["endpointOutput"]["data"]) for r in records])
    return body, ids, scores, np.loadtxt(TEST_CSV, delimiter=",")[:, 0].astype(int)


@pytest.fixture(scope="module")
def baseline() -> dict:
    return documents.baseline_documents(TEST_SCORES_CSV.read_text(), source="test-scores.csv", threshold=0.5, tolerance=0.05)


def label_line(event_id: str, value: int, sampling: dict | None) -> bytes:
    record = {"groundTruthData": {"data": str(value), "encoding": "CSV"}, "eventMetadata": {"eventId": event_id}, "eventVersion": "0"}
    if sampling is not None:
        record["sampling"] = sampling
    return json.dumps(record).encode()


def run(sample, baseline, rows: dict[int, tuple[int, dict | None]], *, rule: SelectionRule | None = RULE, audit: Audit | None = AUDIT):
    """(evaluation, captured, page) of the sample with a label for each of ``rows``: index -> (label, sampling)."""
    body, ids, _, _ = sample
    upload = b"\n".join(label_line(ids[i], value, sampling) for i, (value, sampling) in rows.items())
    found, rejected = ground_truth.read_file(upload, "upload.jsonl", 0)
    assert not rejected
    latest = ground_truth.latest(found)
    captured = Captured(latest.labels, ParseOptions(threshold=0.5), rule, audit if rule else None)
    captured.add(body)
    constraints, calibration, note = documents.load_baseline(baseline)
    evaluation = evaluate(
        captured, latest, threshold=0.5, calibration=calibration, calibration_note=note, constraints=constraints, estimate_on=True
    )
    statistics = documents.statistics(evaluation, {})
    page = report.render(
        evaluation, baseline[documents.STATISTICS_FILE], constraints, calibration,
        report.Page(environment="dev", window="the sample", labels_window="the upload", captured=captured.document()),
        documents.summary(statistics, "now"),
    )  # fmt: skip
    return evaluation, captured, page


def strata(sample) -> tuple[list[int], list[int]]:
    """(the rule's rows, the audit's rows) of the sample."""
    _, ids, scores, _ = sample
    band = [i for i in range(len(ids)) if RULE.selects_prediction(scores[i], int(scores[i] >= 0.5))]
    audited = [i for i in range(len(ids)) if i not in band and AUDIT.selects(ids[i], 0)]
    assert band and audited  # both strata have rows: the tests below say something
    return band, audited


def test_every_row_labelled_all_represents_both_strata_and_a_worse_model_violates_its_constraints(sample, baseline):
    """The newcomer's case: every row labelled 1 (accuracy 0.65 against a threshold of 0.92), each
    line saying ``all``. The labels cover every stratum, so the weighted figures are checked."""
    _, ids, _, _ = sample
    band, audited = strata(sample)
    evaluation, _, _ = run(sample, baseline, {i: (1, EVERY_ROW) for i in range(len(ids))})
    assert evaluation.unrepresented == ()
    assert evaluation.response["rule"].labelled == evaluation.response["rule"].selected == len(band)
    assert evaluation.response["audit"].labelled == evaluation.response["audit"].selected == len(audited)
    assert evaluation.weighted_covers == "all predictions"
    weighted = evaluation.bases[WEIGHTED]
    assert weighted.value("accuracy") == pytest.approx(evaluation.bases[LABELLED].value("accuracy")) and weighted.value("accuracy") < 0.7
    assert {v.metric for v in evaluation.violations} == {"accuracy", "recall", "f1"}  # the realized figures, not the estimate


def test_reviewed_rule_rows_and_the_rest_uploaded_as_all_cover_every_prediction(sample, baseline):
    """Reviewers answered half the rule's rows; every other row, audit rows included, was uploaded as
    ``all``. The rule's stratum is half answered: each answered rule row stands for two; the audit's
    rows are answered by the upload. The weights add up to the sample's 114 rows."""
    _, ids, _, truth = sample
    band, _ = strata(sample)
    answered = band[::2]
    rows = {i: (int(truth[i]), REVIEWED) for i in answered}
    rows |= {i: (int(truth[i]), EVERY_ROW) for i in range(len(ids)) if i not in band}
    evaluation, _, page = run(sample, baseline, rows)
    assert evaluation.unrepresented == ()
    assert evaluation.response["rule"].rate == pytest.approx(len(answered) / len(band))
    assert evaluation.response["audit"].rate == 1.0
    assert evaluation.bases[WEIGHTED].weight == pytest.approx(len(ids))
    assert evaluation.violations == []
    assert "Weighted: all predictions" in page and "audit: " in page and "(100%)" in page


def test_with_a_stratum_unrepresented_the_heading_the_documents_and_the_console_say_what_the_figures_cover(sample, baseline):
    _, _, _, truth = sample
    band, _ = strata(sample)
    evaluation, _, page = run(sample, baseline, {i: (int(truth[i]), REVIEWED) for i in band})
    assert evaluation.unrepresented == ("audit",)
    assert "Weighted: the review rule&#x27;s rows only" in page and "Weighted: all predictions" not in page
    assert evaluation.description(WEIGHTED).endswith("(Horvitz-Thompson): the review rule's rows only")
    assert evaluation.description(LABELLED) == "unweighted, every labelled row"


def test_labels_without_sampling_say_the_response_rate_does_not_apply(sample, baseline):
    _, ids, _, truth = sample
    band, _ = strata(sample)
    evaluation, _, page = run(sample, baseline, {i: (int(truth[i]), None) for i in range(len(ids))})
    assert evaluation.primary == LABELLED
    assert "<dt>Response</dt><dd>does not apply: no joined label carries an inclusion probability" in page
    assert f"rule: {len(band)} rows selected" in page and "selected rows labelled" not in page


def test_the_estimate_line_gives_the_calibration_check_and_without_labels_the_roc_title_names_the_test_set_alone(sample, baseline):
    evaluation, _, page = run(sample, baseline, {})
    # The bundled model's check, as docs/model-quality.md quotes it.
    assert "Cox's test of the test-set scores: a = -0.55, b = 1.45, statistic 2.22, p = 0.33 (used as they are" in page
    assert "expected calibration error 0.016" in page
    check = documents.statistics(evaluation, {})["open_monitor"]["estimate"]["calibration_check"]
    assert check["p_value"] == pytest.approx(0.33, abs=0.005) and check["recalibrated"] is False
    assert "<title>ROC curve: the test set (dashed)</title>" in page and "this period (solid)" not in page


def test_with_the_audit_off_labels_of_the_rule_alone_do_not_claim_all_predictions(sample, baseline):
    """review.audit_percentage 0: the rows the rule leaves have no chance of review, so the rule's
    labels alone stand for the rule's rows only, as when no audit row is answered yet; the audit
    drew nothing, which used to read as nothing to represent."""
    band, _ = strata(sample)
    _, _, scores, truth = sample
    evaluation, captured, _ = run(sample, baseline, {i: (int(truth[i]), REVIEWED) for i in band}, audit=None)
    assert captured.selected["audit"] == 0 and evaluation.response["audit"].population == len(scores) - len(band)
    assert evaluation.unrepresented == ("audit",) and evaluation.weighted_covers == "the review rule's rows only"
    assert all(v.metric.startswith("estimated_") for v in evaluation.violations)  # checked on the estimate, not the band
