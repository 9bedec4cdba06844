"""One period's model quality: its captured predictions read, its labels joined with them, the
realized figures on three bases, the label-free estimate, and the constraint check. The deployed
monitor (``lambdas.monitoring.open.model_quality``) and ``make quality-report`` both call it.

Bases (each labelled for what it is in the documents and the page):

- ``weighted``: the rows whose labels carry an inclusion probability (``sampling``). When the monitor
  knows which captured rows the review chose (the rule and the audit draw, applied again to the
  captured rows: ``Captured.add``), each row's stratum is where they put it, not what its label's
  ``selectedBy`` says, and the weights come from the counts it sees: a stratum's labelled rows share
  the captured rows they stand for equally (the rule's: its own selected rows; the audit's: the rows
  the rule left, less those labelled outside both draws), and a row labelled outside both draws (an
  upload of every row, ``selectedBy`` ``all``) counts for itself. That is Horvitz-Thompson
  post-stratified on the strata's known sizes, with the weighting-class adjustment for non-response
  (tasks that expired unanswered, or not answered yet, are assumed missing at random within their
  stratum) folded in: unbiased for the period's captured predictions, and so for all predictions
  (capture sampling is a uniform draw). It needs no label to be right about its probability: labels
  of every row make every weight 1, however they are marked, and 51 audit rows the 2 % draw happened
  to take stand for the 2,079 rows the rule left, not for 51 / 0.02 = 2,550 (plain
  Horvitz-Thompson's, which tilts the figure to the audit's confident rows). Without the review rule,
  each row counts ``1 / inclusionProbability`` (plain Horvitz-Thompson), the only thing known.
- ``reviewed``: the reviewers' labels (``selectedBy`` rule or audit), unweighted: what reviewed
  rows look like, biased by design (the rule sends the uncertain ones).
- ``labelled``: every joined label, unweighted (with uploads that say nothing of how their rows
  were chosen).

The period's figures in Model Monitor's ``binary_classification_metrics`` are the weighted ones when
any label carries an inclusion probability, else the unweighted ones over all labelled rows (the
documents name the basis). A constraint is violated only when the figure's whole 95 % interval lies
beyond its threshold (below it, for ``LessThanThreshold``): a figure on few labels does not alarm on
noise. A metric without a realized figure (no labels) is checked on its estimate, as
``estimated_<metric>``, when the estimate is on.

A stratum that stands for rows but has no label (no audit row answered yet, none drawn yet in a
small period, or the audit off) leaves part of the traffic unrepresented: the weighted figures then describe the other strata only, not all
predictions (at a response rate of 0 no weighting can restore it). The evaluation says so
(``Evaluation.unrepresented``: the documents, the page and the console name the strata), and the
constraints are checked on the estimate instead, as with no labels: the figures over the uncertain
band alone would raise violations the model does not deserve.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lambdas.capture.records import ParseOptions, parse_line
from lambdas.capture.selection import AUDIT, RULE, Audit, SelectionRule
from lambdas.monitoring.quality import metrics
from lambdas.monitoring.quality.estimate import Calibration, Estimate, estimate
from lambdas.monitoring.quality.labels import Key, Latest

WEIGHTED, REVIEWED, LABELLED = "weighted", "reviewed", "labelled"
# How the weighted figures weigh their rows: from the strata's counts when the review rule is known
# (``_weights``), else by each label's inclusion probability.
POST_STRATIFIED = "each labelled row counts for an equal share of its review stratum's captured rows, post-stratified (Horvitz-Thompson)"
HORVITZ_THOMPSON = "each labelled row counts 1 / its inclusion probability (Horvitz-Thompson)"
BASES = {  # the unweighted bases' descriptions; the weighted one's: describe()
    REVIEWED: "unweighted, reviewed rows only (biased by the review rule)",
    LABELLED: "unweighted, every labelled row",
}
COMPARISONS = {"LessThanThreshold": "below", "GreaterThanThreshold": "above"}


@dataclass
class Captured:
    """What a period's capture files hold: every valid row's score (the estimate), the labelled rows
    found (the join), and what could not be read."""

    wanted: Mapping[Key, Any]
    options: ParseOptions
    rule: SelectionRule | None = None  # which captured rows went to review, when known
    audit: Audit | None = None
    scores: array = field(default_factory=lambda: array("d"))
    # Each labelled row found: its score, its decision, and the stratum (RULE, AUDIT) the rule or the
    # audit draw put it in (None: neither, or the rule is not known).
    joined: dict[Key, tuple[float, int, str | None]] = field(default_factory=dict)
    shared_ids: int = 0  # labelled rows whose (record ID, row index) more than one captured row has
    files: int = 0
    records: int = 0
    rejected: Counter = field(default_factory=Counter)  # capture lines (or rows) not read, by reason
    selected: Counter = field(default_factory=Counter)  # captured rows the review rule / audit selected

    def add(self, body: bytes) -> None:
        """Every line of one capture file (the one parser: ``lambdas.capture.records``)."""
        self.files += 1
        options, wanted, joined, scores = self.options, self.wanted, self.joined, self.scores
        rule, audit = self.rule, self.audit
        for number, line in enumerate(body.split(b"\n"), start=1):
            result = parse_line(line, number, options)
            if result.blank:
                continue
            self.records += 1
            for item in result.rejected:
                self.rejected[item.reason.split(":")[0]] += 1
            for row in result.rows:
                scores.append(row.probability)
                stratum = None
                if rule is not None:
                    if rule.selects_prediction(row.probability, row.prediction):
                        stratum = RULE
                    elif audit is not None and audit.selects(row.record_id, row.row_index):
                        stratum = AUDIT
                    if stratum is not None:
                        self.selected[stratum] += 1
                key = (row.record_id, row.row_index)
                if key in wanted:
                    if key in joined:
                        self.shared_ids += 1
                    else:
                        joined[key] = (row.probability, row.prediction, stratum)

    @property
    def rows(self) -> int:
        return len(self.scores)

    def document(self) -> dict[str, Any]:
        return {"files": self.files, "records": self.records, "rows": self.rows, "rejected": dict(self.rejected.most_common())}


@dataclass(frozen=True)
class Violation:
    metric: str
    operator: str
    threshold: float
    figure: metrics.Figure
    basis: str

    def document(self) -> dict[str, Any]:
        """Model Monitor's model-quality violation: ``constraint_check_type`` is the comparison operator."""
        where = COMPARISONS.get(self.operator, self.operator)
        description = (
            f"Metric {self.metric} with {self.figure.value:.4g} (95 % interval {self.figure.low:.4g} to {self.figure.high:.4g}, "
            f"{self.basis}) was {self.operator} {self.threshold:.4g}: the whole interval lies {where} the threshold"
        )
        return {"constraint_check_type": self.operator, "description": description, "metric_name": self.metric}


@dataclass(frozen=True)
class Response:
    """A selection stratum's response: its captured rows the rule or audit selected, those of them
    with a weighted label (any ``selectedBy``: the module docstring), their ratio; and the captured
    rows the stratum's labelled rows stand for (``population``: the rule's own rows; for the audit,
    the rows the rule left, less those labelled outside both draws, which stand for themselves)."""

    selected: int
    labelled: int
    population: int

    @property
    def rate(self) -> float:
        return self.labelled / self.selected if self.selected else math.nan

    def document(self) -> dict[str, Any]:
        rate = None if math.isnan(self.rate) else round(self.rate, 6)
        return {"selected": self.selected, "labelled": self.labelled, "rate": rate, "stands_for": self.population}


@dataclass(frozen=True)
class Evaluation:
    bases: dict[str, metrics.Figures]  # only the bases with rows
    primary: str | None  # the basis of binary_classification_metrics; None: no labels joined
    estimate: Estimate | None
    estimate_note: str | None  # why there is no estimate
    violations: list[Violation]
    checked: dict[str, bool]  # constrained figure -> violated, for each figure that could be checked
    response: dict[str, Response] | None  # None: which rows went to review is not known
    # Strata with rows selected for review but none labelled: the weighted figures do not cover them.
    unrepresented: tuple[str, ...]
    joined: int
    without_probability: int
    by_selection: dict[str, int]
    duplicates: int
    conflicts: int
    shared_ids: int

    @property
    def primary_figures(self) -> metrics.Figures | None:
        return self.bases.get(self.primary) if self.primary else None

    @property
    def weighted_covers(self) -> str:
        """Which predictions the weighted figures stand for: all of them unless a stratum is unrepresented
        (the audit's rows stand for every row the rule does not select)."""
        if not self.unrepresented:
            return "all predictions"
        if self.unrepresented == (RULE,):
            return "predictions outside the review rule's rows"
        if self.unrepresented == (AUDIT,):
            return "the review rule's rows only"
        return "the rows labelled outside review only"

    def description(self, basis: str) -> str:
        """What a basis's figures are, for the documents and the console (``describe``, with what the
        weighted ones cover)."""
        return describe(basis, rule_known=self.response is not None, covers=self.weighted_covers)


def describe(basis: str, *, rule_known: bool, covers: str = "all predictions") -> str:
    """A basis's description: ``BASES``, the weighted one saying how its rows are weighed (``_weights``)
    and which predictions it covers."""
    if basis != WEIGHTED:
        return BASES[basis]
    return f"{POST_STRATIFIED if rule_known else HORVITZ_THOMPSON}: {covers}"


def _weights(probability: np.ndarray, strata: list[str | None], response: Mapping[str, Response] | None) -> np.ndarray:
    """Each weighted row's weight (the module docstring). Without ``response`` (the review rule is not
    known): ``1 / probability``, Horvitz-Thompson. With it, by where the rule and the audit draw put
    each row (``strata``; None for neither): a stratum's labelled rows share its ``population``
    equally (post-stratification, with the non-response of a weighting class), and a row neither
    draw chose counts for itself."""
    if response is None:
        return 1.0 / probability
    weights = np.ones(len(strata), dtype=np.float64)
    for stratum, found in response.items():
        if found.labelled:
            weights[np.array([s == stratum for s in strata], dtype=bool)] = found.population / found.labelled
    return weights


def evaluate(
    captured: Captured,
    latest: Latest,
    *,
    threshold: float,
    calibration: Calibration | None,
    calibration_note: str | None,
    constraints: Mapping[str, Mapping[str, Any]],
    estimate_on: bool,
) -> Evaluation:
    """The period's figures, estimate and violations (the module docstring)."""
    keys = [key for key in latest.labels if key in captured.joined]
    labels = [latest.labels[key] for key in keys]
    y = np.array([label.value for label in labels], dtype=np.float64)
    p = np.array([captured.joined[key][0] for key in keys], dtype=np.float64)
    yhat = (p >= threshold).astype(np.float64)
    selected = [label.selected_by for label in labels]
    probability = np.array([label.inclusion_probability or math.nan for label in labels], dtype=np.float64)
    known = ~np.isnan(probability)
    # The weighted rows' strata, by where the capture filter put each row (the module docstring).
    strata = [captured.joined[key][2] for key, k in zip(keys, known, strict=True) if k]
    response = None
    if captured.rule is not None:
        counts = Counter(strata)
        # The audit draws from the rows the rule leaves; those labelled outside both draws (an upload
        # of every row) stand for themselves, so the audit's rows stand for the rest.
        left = captured.rows - captured.selected[RULE] - counts[None]
        population = {RULE: captured.selected[RULE], AUDIT: max(left, counts[AUDIT])}
        response = {stratum: Response(captured.selected[stratum], counts[stratum], population[stratum]) for stratum in (RULE, AUDIT)}
    bases: dict[str, metrics.Figures] = {}
    if known.any():
        bases[WEIGHTED] = metrics.compute(y[known], p[known], yhat[known], _weights(probability[known], strata, response))
    reviewed = np.array([s in (RULE, AUDIT) for s in selected], dtype=bool)
    if reviewed.any():
        bases[REVIEWED] = metrics.compute(y[reviewed], p[reviewed], yhat[reviewed])
    if len(y):
        bases[LABELLED] = metrics.compute(y, p, yhat)
    primary = WEIGHTED if WEIGHTED in bases else (LABELLED if LABELLED in bases else None)

    found_estimate, note = None, None
    if not estimate_on:
        note = "the estimate is off (monitoring.model_quality.estimate)"
    elif calibration is None:
        note = calibration_note or "no reference scores to calibrate against"
    elif not captured.rows:
        note = "no captured predictions in the period"
    else:
        found_estimate = estimate(calibration, np.frombuffer(captured.scores, dtype=np.float64), threshold)

    # Only the weighted basis claims all predictions from the strata review chose from (uploads without
    # sampling are the unweighted "labelled" basis, which claims nothing about how its rows were chosen).
    answers = (response or {}).items() if primary == WEIGHTED else ()
    # A stratum that stands for rows but has none labelled: its draw took nothing yet, none of its
    # rows is answered yet, or (the audit) it is off.
    unrepresented = tuple(stratum for stratum, found in answers if found.population and not found.labelled)
    realized = bases.get(primary) if primary and not unrepresented else None
    violations, checked = check(constraints, realized, describe(primary, rule_known=response is not None) if primary else "", found_estimate)
    return Evaluation(
        bases=bases,
        primary=primary,
        estimate=found_estimate,
        estimate_note=note,
        violations=violations,
        checked=checked,
        response=response,
        unrepresented=unrepresented,
        joined=len(keys),
        without_probability=int((~known).sum()),
        by_selection={name: sum(1 for s in selected if (s or "unknown") == name) for name in ("rule", "audit", "all", "unknown")},
        duplicates=sum(1 for key in keys if key in latest.duplicated),
        conflicts=sum(1 for key in keys if key in latest.conflicting),
        shared_ids=captured.shared_ids,
    )


def check(
    constraints: Mapping[str, Mapping[str, Any]], realized: metrics.Figures | None, basis: str, estimated: Estimate | None
) -> tuple[list[Violation], dict[str, bool]]:
    """A violation for each constraint whose figure's whole 95 % interval lies beyond its threshold:
    the realized figure, else the estimate (``estimated_<metric>``); and whether each constrained
    figure that could be checked (one with an interval) was violated."""
    violations, checked = [], {}
    for name, constraint in constraints.items():
        operator, threshold = constraint.get("comparison_operator"), constraint.get("threshold")
        if operator not in COMPARISONS or not isinstance(threshold, (int, float)):
            continue
        figure, metric, where = realized.figures.get(name) if realized else None, name, basis
        if (figure is None or not figure.defined) and estimated is not None and name in estimated.figures:
            figure, metric, where = estimated.figures[name], f"estimated_{name}", "estimated from the scores (CBPE), no labels"
        if figure is None or not figure.defined or math.isnan(figure.low):
            continue
        beyond = figure.high < threshold if operator == "LessThanThreshold" else figure.low > threshold
        checked[name] = beyond
        if beyond:
            violations.append(Violation(metric, operator, float(threshold), figure, where))
    return violations, checked
