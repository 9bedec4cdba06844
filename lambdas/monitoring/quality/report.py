"""A period's model quality as one self-contained HTML page, in the drift report's style (its CSS;
no script, no external style, image or font; every value from data HTML-escaped).

The page: a header (period, captures, labels by how they were chosen, the response rate of each
review stratum, the estimate's basis and the test-set scores' calibration check), the violations, the figures table (weighted, unweighted over
reviewed rows, unweighted over all labelled rows, estimated without labels, the test set; each
with its 95 % interval and labelled for what it is), the confusion matrix, the ROC curve and the
calibration (reliability) plot as inline SVG, and the figures over recent periods (a plot of
accuracy, realized and estimated, and a table). The plots read without colour: the period is a solid
line or filled marks, the test set a dashed line or hollow marks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from lambdas.monitoring.drift.report import CSS, FONT_UNITS, REPORT_FILE
from lambdas.monitoring.quality import metrics
from lambdas.monitoring.quality.evaluation import LABELLED, REVIEWED, WEIGHTED, Evaluation
from lambdas.monitoring.quality.estimate import SIGNIFICANCE, Calibration

PERIOD_COLOUR, REFERENCE_COLOUR, ESTIMATE_COLOUR = "#c2410c", "#1f5fa8", "#555"
SIZE, MARGIN = 260, 40  # square plots: SVG user units
NAMES = {
    "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1", "auc": "AUC",
    "log_loss": "Log loss", "brier_score": "Brier score",
}  # fmt: skip
HEADINGS = {REVIEWED: "Unweighted: reviewed rows", LABELLED: "Unweighted: all labelled rows"}  # the weighted one: heading()
QUALITY_CSS = f"""
.plots{{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:10px}}
.card{{background:#fff;border:1px solid #ccc;padding:8px}}
.figures td,.figures th{{font-variant-numeric:tabular-nums}}.interval{{color:#444;font-size:.85em}}
.wide{{max-width:720px}}
.axis{{font-size:{FONT_UNITS}px;fill:#333}}
"""


@dataclass(frozen=True)
class Page:
    """What the header says about the period and its inputs."""

    environment: str
    window: str
    labels_window: str
    captured: Mapping[str, Any]
    intake: Mapping[str, Any] | None = None  # labels that arrived in this run's hours (the deployed run's own period)
    re_evaluated: str | None = None
    tolerance: float | None = None
    history: Sequence[Mapping[str, Any]] = field(default_factory=tuple)  # documents.summary of earlier periods, oldest first


def _n(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "NaN":
        return "&#8212;"
    return escape(f"{float(value):.{digits}g}")


def _cell(figure: metrics.Figure | None) -> str:
    if figure is None or not figure.defined:
        return "<td>&#8212;</td>"
    interval = "" if math.isnan(figure.low) else f'<br><span class="interval">95 %: {_n(figure.low)} to {_n(figure.high)}</span>'
    return f"<td>{_n(figure.value)}{interval}</td>"


def heading(evaluation: Evaluation, basis: str) -> str:
    """A basis's column heading; the weighted one says which predictions it covers (all, unless a
    review stratum has no labelled row)."""
    return f"Weighted: {evaluation.weighted_covers}" if basis == WEIGHTED else HEADINGS[basis]


def figures_table(evaluation: Evaluation, baseline: Mapping[str, Any], constraints: Mapping[str, Mapping[str, Any]]) -> list[str]:
    columns = [(name, evaluation.bases.get(name)) for name in (WEIGHTED, REVIEWED, LABELLED)]
    head = "".join(
        f'<th>{escape(heading(evaluation, name))}<br><span class="interval">{figures.rows if figures else 0:,} rows</span></th>'
        for name, figures in columns
    )
    estimate = evaluation.estimate
    head += f'<th>Estimated, no labels<br><span class="interval">{estimate.rows if estimate else 0:,} rows</span></th>'
    head += '<th>Test set<br><span class="interval">and threshold</span></th>'
    out = [f'<table class="figures"><thead><tr><th>Figure</th>{head}</tr></thead><tbody>']
    reference = baseline.get("binary_classification_metrics") or {}
    for name in NAMES:
        row = [f"<td>{escape(NAMES[name])}</td>"]
        row += [_cell(figures.figures.get(name) if figures else None) for _, figures in columns]
        row.append(_cell(estimate.figures.get(name) if estimate else None))
        value = (reference.get(name) or {}).get("value")
        limit = constraints.get(name, {}).get("threshold")
        below = f'<br><span class="interval">violation below {_n(limit)}</span>' if limit is not None else ""
        row.append(f"<td>{_n(value)}{below}</td>")
        out.append(f"<tr>{''.join(row)}</tr>")
    out.append("</tbody></table>")
    return out


def _axes(title: str, x_label: str, y_label: str) -> list[str]:
    inner = SIZE - 2 * MARGIN
    parts = [
        f'<svg viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="{escape(title)}" class="plot"><title>{escape(title)}</title>',
        f'<rect x="{MARGIN}" y="{MARGIN}" width="{inner}" height="{inner}" fill="#fff" stroke="#999" stroke-width="0.5"/>',
    ]
    for tick in (0.0, 0.5, 1.0):
        x, y = _x(tick), _y(tick)
        parts.append(f'<text x="{x:.1f}" y="{SIZE - MARGIN + FONT_UNITS + 2}" text-anchor="middle" class="axis">{tick:g}</text>')
        parts.append(f'<text x="{MARGIN - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">{tick:g}</text>')
    parts.append(f'<text x="{SIZE / 2:.1f}" y="{SIZE - 6}" text-anchor="middle" class="axis">{escape(x_label)}</text>')
    parts.append(f'<text x="12" y="{SIZE / 2:.1f}" text-anchor="middle" class="axis" transform="rotate(-90 12 {SIZE / 2:.1f})">{escape(y_label)}</text>')
    parts.append(f'<line x1="{_x(0)}" y1="{_y(0)}" x2="{_x(1)}" y2="{_y(1)}" stroke="#bbb" stroke-width="0.8" stroke-dasharray="2 3"/>')
    return parts


def _x(value: float) -> float:
    return MARGIN + min(max(value, 0.0), 1.0) * (SIZE - 2 * MARGIN)


def _y(value: float) -> float:
    return SIZE - MARGIN - min(max(value, 0.0), 1.0) * (SIZE - 2 * MARGIN)


def _line(xs: Sequence[float], ys: Sequence[float], colour: str, dashed: bool) -> str:
    points = " ".join(f"{_x(x):.1f},{_y(y):.1f}" for x, y in zip(xs, ys, strict=True))
    dash = ' stroke-dasharray="5 3"' if dashed else ""
    return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"{dash}/>'


def _legend(entries: Sequence[tuple[str, str, bool]]) -> list[str]:
    parts = []
    for index, (text, colour, dashed) in enumerate(entries):
        y = 12 + 14 * index
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        parts.append(f'<line x1="{MARGIN}" y1="{y}" x2="{MARGIN + 18}" y2="{y}" stroke="{colour}" stroke-width="1.6"{dash}/>')
        parts.append(f'<text x="{MARGIN + 22}" y="{y + 4}" class="legend">{escape(text)}</text>')
    return parts


def roc_plot(period: Mapping[str, Any] | None, reference: Mapping[str, Any] | None, basis: str) -> str:
    """The period's and the test set's ROC curves, each when it has one; the title names the curves drawn."""
    drawn, legend = [], []
    for curve, colour, dashed, text, titled in (
        (reference, REFERENCE_COLOUR, True, "test set", "the test set (dashed)"),
        (period, PERIOD_COLOUR, False, f"period ({basis})", "this period (solid)"),
    ):
        roc = (curve or {}).get("receiver_operating_characteristic_curve")
        if roc and roc.get("false_positive_rates"):
            drawn.append((_line(roc["false_positive_rates"], roc["true_positive_rates"], colour, dashed), titled))
            legend.append((text, colour, dashed))
    title = f"ROC curve: {' and '.join(titled for _, titled in reversed(drawn))}" if drawn else "ROC curve: none (no labels and no test set)"
    parts = _axes(title, "false positive rate", "true positive rate")
    parts += [line for line, _ in drawn]
    parts += _legend(legend)
    parts.append("</svg>")
    return "".join(parts)


def calibration_plot(period: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]], basis: str) -> str:
    parts = _axes("Calibration: share of positives against the mean score, per bin", "mean score", "share labelled positive")
    legend = []
    for bins, colour, dashed, text, hollow in ((reference, REFERENCE_COLOUR, True, "test set", True), (period, PERIOD_COLOUR, False, f"period ({basis})", False)):
        if not bins:
            continue
        xs, ys = [b["mean_score"] for b in bins], [b["observed"] for b in bins]
        parts.append(_line(xs, ys, colour, dashed))
        fill = "#fff" if hollow else colour
        parts += [f'<circle cx="{_x(x):.1f}" cy="{_y(y):.1f}" r="3" fill="{fill}" stroke="{colour}" stroke-width="1.2"/>' for x, y in zip(xs, ys, strict=True)]
        legend.append((text, colour, dashed))
    parts += _legend(legend)
    parts.append("</svg>")
    return "".join(parts)


def confusion_plot(confusion: Mapping[str, Mapping[str, float]], basis: str) -> str:
    """The 2 x 2 matrix, rows the true label, columns the predicted one; each cell's share of the
    total as its shade (darker: more) and as text."""
    title = f"Confusion matrix ({basis}): rows the true label, columns the predicted label"
    total = sum(float(v) for row in confusion.values() for v in row.values()) or 1.0
    inner = SIZE - 2 * MARGIN
    cell = inner / 2
    parts = [f'<svg viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="{escape(title)}" class="plot"><title>{escape(title)}</title>']
    for r, truth in enumerate(("0", "1")):
        for c, predicted in enumerate(("0", "1")):
            value = float(confusion.get(truth, {}).get(predicted, 0))
            share = value / total
            grey = int(245 - 150 * share)
            x, y = MARGIN + c * cell, MARGIN + r * cell
            text_fill = "#fff" if grey < 150 else "#111"
            shown = f"{value:,.0f}" if value >= 10 or value.is_integer() else f"{value:.2f}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" fill="rgb({grey},{grey},{grey})" stroke="#666"/>')
            parts.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2:.1f}" text-anchor="middle" class="legend" fill="{text_fill}" style="fill:{text_fill}">{escape(shown)}</text>')
            parts.append(f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 16:.1f}" text-anchor="middle" class="axis" style="fill:{text_fill}">{share:.1%}</text>')
    for index, name in enumerate(("0", "1")):
        parts.append(f'<text x="{MARGIN + (index + 0.5) * cell:.1f}" y="{MARGIN - 6}" text-anchor="middle" class="axis">predicted {name}</text>')
        y = MARGIN + (index + 0.5) * cell
        parts.append(f'<text x="{MARGIN - 6}" y="{y:.1f}" text-anchor="middle" class="axis" transform="rotate(-90 {MARGIN - 6} {y:.1f})">true {name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_plot(points: Sequence[Mapping[str, Any]], metric: str = "accuracy") -> str:
    """``metric`` per period: realized (solid, filled marks, interval bars) and estimated (dashed, hollow)."""
    title = f"{NAMES[metric]} over recent periods: realized (solid) and estimated without labels (dashed), 95 % intervals"
    width, height, left, right, top, bottom = 560, 220, 44, 12, 26, 40
    values = [v for p in points for kind in ("realized", "estimated") for v in (p.get(kind, {}).get(metric) or [])[:3] if isinstance(v, (int, float))]
    low = min(values, default=0.0)
    low = max(0.0, math.floor(low * 20) / 20 - 0.05) if values else 0.0
    span = 1.0 - low or 1.0
    count = max(len(points), 1)
    inner_w, inner_h = width - left - right, height - top - bottom

    def x_of(index: int) -> float:
        return left + (index + 0.5) * inner_w / count

    def y_of(value: float) -> float:
        return top + (1 - (value - low) / span) * inner_h

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" class="plot"><title>{escape(title)}</title>',
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#999" stroke-width="0.5"/>',
    ]
    for tick in (low, (low + 1) / 2, 1.0):
        parts.append(f'<text x="{left - 4}" y="{y_of(tick) + 4:.1f}" text-anchor="end" class="axis">{tick:.2f}</text>')
    for kind, colour, dashed, shift in (("estimated", ESTIMATE_COLOUR, True, 4), ("realized", PERIOD_COLOUR, False, -4)):
        line = []
        for index, point in enumerate(points):
            found = point.get(kind, {}).get(metric)
            if not found or not isinstance(found[0], (int, float)):
                continue
            x = x_of(index) + shift
            line.append(f"{x:.1f},{y_of(found[0]):.1f}")
            if isinstance(found[1], (int, float)) and isinstance(found[2], (int, float)):
                parts.append(f'<line x1="{x:.1f}" y1="{y_of(found[1]):.1f}" x2="{x:.1f}" y2="{y_of(found[2]):.1f}" stroke="{colour}" stroke-width="1"/>')
            fill = "#fff" if dashed else colour
            parts.append(f'<circle cx="{x:.1f}" cy="{y_of(found[0]):.1f}" r="3" fill="{fill}" stroke="{colour}" stroke-width="1.2"/>')
        if len(line) > 1:
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="{colour}" stroke-width="1.4"{dash}/>')
    step = max(1, math.ceil(count / 5))  # at most six labels: they do not overlap
    for index, point in enumerate(points):
        if index % step == 0 or index == count - 1:
            parts.append(f'<text x="{x_of(index):.1f}" y="{height - bottom + FONT_UNITS + 4}" text-anchor="middle" class="axis">{escape(str(point.get("label", "")))}</text>')
    parts.append(f'<line x1="{left}" y1="12" x2="{left + 18}" y2="12" stroke="{PERIOD_COLOUR}" stroke-width="1.6"/><text x="{left + 22}" y="16" class="legend">realized</text>')
    parts.append(
        f'<line x1="{left + 110}" y1="12" x2="{left + 128}" y2="12" stroke="{ESTIMATE_COLOUR}" stroke-width="1.6" stroke-dasharray="5 3"/>'
        f'<text x="{left + 132}" y="16" class="legend">estimated (no labels)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _history_table(points: Sequence[Mapping[str, Any]]) -> list[str]:
    out = ["<table><thead><tr><th>Period end</th><th>Labelled rows (basis)</th>"]
    out += [f"<th>{escape(NAMES[m])}: realized / estimated</th>" for m in ("accuracy", "f1", "auc")]
    out.append("</tr></thead><tbody>")
    for point in reversed(points):
        cells = [f"<td>{escape(str(point.get('end', '')))}</td>", f"<td>{point.get('labelled', 0)} ({escape(str(point.get('basis') or 'none'))})</td>"]
        for metric in ("accuracy", "f1", "auc"):
            shown = []
            for kind in ("realized", "estimated"):
                found = point.get(kind, {}).get(metric)
                shown.append(f'{_n(found[0])} <span class="interval">[{_n(found[1])}, {_n(found[2])}]</span>' if found else "&#8212;")
            cells.append(f"<td>{' / '.join(shown)}</td>")
        out.append(f"<tr>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return out


def unrepresented_note(strata: tuple[str, ...]) -> str:
    """What the page and the console say when a stratum has rows selected but none labelled."""
    return (
        f"no {' or '.join(strata)} row is labelled yet: the weighted figures cover only the other rows, not all predictions, "
        "and the constraints are checked on the estimate instead"
    )


def _response(found: Any) -> str:
    text = f"{found.labelled:,} of {found.selected:,} selected rows labelled"
    return text if math.isnan(found.rate) else f"{text} ({found.rate:.0%})"


def calibration_check(calibration: Calibration) -> str:
    """Cox's test of the test-set scores and their expected calibration error, as the page states them."""
    decided = "recalibrated" if calibration.recalibrated else "used as they are"
    return (
        f"Cox's test of the test-set scores: a = {_n(calibration.intercept, 2)}, b = {_n(calibration.slope, 3)}, "
        f"statistic {_n(calibration.statistic, 3)}, p = {_n(calibration.p_value, 2)} ({decided}: recalibrated when p &lt; {SIGNIFICANCE:g}); "
        f"expected calibration error {_n(calibration.ece, 2)}"
    )


def render(
    evaluation: Evaluation,
    baseline: Mapping[str, Any],
    constraints: Mapping[str, Mapping[str, Any]],
    calibration: Calibration | None,
    page: Page,
    current: Mapping[str, Any],
) -> str:
    """The page of ``evaluation``; ``baseline`` is the baseline's statistics.json, ``current`` this
    period's history point (``documents.summary``), drawn after ``page.history``."""
    e = escape
    primary = evaluation.primary_figures
    basis = evaluation.primary or "none"
    title = f"Model-quality report: {e(page.environment)}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{CSS}{QUALITY_CSS}</style></head><body><main>",
        f"<h1>{title}</h1>",
        "<dl>",
        f"<dt>Period</dt><dd>{e(page.window)}</dd>",
        f"<dt>Labels</dt><dd>{e(page.labels_window)}</dd>",
    ]
    if page.re_evaluated:
        out.append(f'<dt>Late labels</dt><dd class="flag">{e(page.re_evaluated)}</dd>')
    captured = page.captured
    rejected = captured.get("rejected") or {}
    out.append(
        f"<dt>Predictions</dt><dd>{captured.get('rows', 0):,} captured rows in {captured.get('files', 0):,} capture file(s), "
        f"{sum(rejected.values()):,} line(s) or rows not read</dd>"
    )
    selection = evaluation.by_selection
    out.append(
        f"<dt>Labelled rows</dt><dd>{evaluation.joined:,} joined: {selection['rule']:,} chosen by the review rule, {selection['audit']:,} audit, "
        f"{selection['all']:,} labelled in full, {selection['unknown']:,} without a known selection probability (these count in the unweighted figures only)</dd>"
    )
    if evaluation.response is not None and not evaluation.joined:
        out.append("<dt>Response</dt><dd>no labels given or joined</dd>")
    elif evaluation.response is not None and evaluation.primary != WEIGHTED:
        selected = "; ".join(f"{stratum}: {found.selected:,} rows selected" for stratum, found in evaluation.response.items())
        out.append(
            f"<dt>Response</dt><dd>does not apply: no joined label carries an inclusion probability, so no figure is weighted "
            f"and none is adjusted for unanswered tasks ({selected})</dd>"
        )
    elif evaluation.response is not None:
        rates = "; ".join(f"{stratum}: {_response(found)}" for stratum, found in evaluation.response.items())
        out.append(f"<dt>Response</dt><dd>{rates}. Unanswered rows are assumed missing at random within their stratum.</dd>")
        if evaluation.unrepresented:
            out.append(f'<dt>Coverage</dt><dd class="flag">{e(unrepresented_note(evaluation.unrepresented))}</dd>')
    else:
        out.append("<dt>Response</dt><dd>unknown: the monitor is not told the review rule (no adjustment for unanswered tasks)</dd>")
    if evaluation.duplicates or evaluation.shared_ids:
        out.append(
            f"<dt>Duplicates</dt><dd>{evaluation.duplicates:,} row(s) labelled more than once (the latest label counts; "
            f"{evaluation.conflicts:,} disagree); {evaluation.shared_ids:,} labelled row(s) whose ID more than one prediction has (the first counts)</dd>"
        )
    if page.intake:
        intake = page.intake
        reasons = "; ".join(f"{e(str(r))}: {n:,}" for r, n in (intake.get("rejected") or {}).items())
        listed = lambda name: f" (listed in {e(name)})" if name else ""  # noqa: E731
        out.append(
            f"<dt>Labels arrived</dt><dd>{intake.get('labels', 0):,} label(s) in {intake.get('files', 0):,} file(s) this period; "
            f"<strong>{intake.get('unknown_ids', 0):,} for no captured prediction</strong> (IDs unknown in the periods they could label)"
            f"{listed(intake.get('unknown_file'))}; "
            f"{intake.get('rejected_lines', 0):,} line(s) set aside{': ' + reasons if reasons else ''}{listed(intake.get('rejected_file'))}</dd>"
        )
        outside = intake.get("outside_hour_folders") or {}
        if outside.get("count"):
            keys = ", ".join(f"<code>{e(key)}</code>" for key in outside.get("keys") or [])
            more = f" and {outside['count'] - len(outside.get('keys') or []):,} more" if outside["count"] > len(outside.get("keys") or []) else ""
            out.append(
                f"<dt>Never read</dt><dd><strong>{outside['count']:,} file(s) or folder(s) outside the ground-truth hour folders</strong> "
                f"(<code>yyyy/mm/dd/hh/</code>): {keys}{more}. Move their labels into the hour folder of the time you write them.</dd>"
            )
    estimate = evaluation.estimate
    if estimate is not None:
        how = "recalibrated (isotonic regression) on" if estimate.recalibrated else "as they are: calibrated on"
        basis_text = f"from {estimate.rows:,} scores, {how} the {estimate.reference_rows:,}-row test set"
    else:
        basis_text = e(evaluation.estimate_note or "none")
    if calibration is not None:
        basis_text += f". {calibration_check(calibration)}"
    out.append(f"<dt>Estimate</dt><dd>{basis_text}</dd>")
    out.append(f"<dt>Violations</dt><dd>{len(evaluation.violations)}</dd></dl>")

    out.append("<h2>Violations</h2>")
    if evaluation.violations:
        out.append("<table><thead><tr><th>Metric</th><th>Check</th><th>Description</th></tr></thead><tbody>")
        for violation in evaluation.violations:
            document = violation.document()
            out.append(f"<tr><td>{e(document['metric_name'])}</td><td>{e(document['constraint_check_type'])}</td><td>{e(document['description'])}</td></tr>")
        out.append("</tbody></table>")
    else:
        out.append('<p class="ok">No violations: no figure\'s whole 95 % interval lies below its threshold.</p>')

    out.append("<h2>Figures</h2>")
    out.append(
        '<p class="note"><strong>Weighted</strong>: quality over all predictions (over fewer when a review stratum has no '
        "labelled row: its heading says which); each labelled row counts for an equal share of its review stratum's captured "
        "rows (the rule's selected rows; the audit's, the rows the rule left), unanswered tasks included (Horvitz-Thompson, "
        "post-stratified), or, when the review rule is not known, 1 / (the probability it was chosen for review, capture "
        "sampling included). <strong>Unweighted, reviewed rows</strong>: the reviewers' labels as they are, a biased "
        "sample (the review rule picks uncertain rows). <strong>Unweighted, all labelled rows</strong>: with uploaded labels "
        "that say nothing of how their rows were chosen. <strong>Estimated</strong>: from the scores alone (CBPE), assuming "
        "they keep the test set's calibration (no concept change). Intervals are 95 %. Log loss and Brier score: lower is better "
        "(no threshold). For the other figures a violation needs the figure's whole interval below the test set's figure less "
        "the tolerance.</p>"
    )
    out += figures_table(evaluation, baseline, constraints)

    out.append('<h2>Plots</h2><div class="plots">')
    if primary is not None:
        out.append(f'<section class="card"><h3>Confusion matrix ({e(basis)})</h3>{confusion_plot(primary.confusion, basis)}</section>')
    reference_metrics = baseline.get("binary_classification_metrics")
    out.append(
        f'<section class="card"><h3>ROC curve</h3>{roc_plot(primary.curves if primary else None, reference_metrics, basis)}</section>'
    )
    out.append(
        f'<section class="card"><h3>Calibration</h3>'
        f"{calibration_plot(primary.reliability if primary else [], calibration.reliability if calibration else [], basis)}</section>"
    )
    out.append("</div>")

    points = [*page.history, current]
    out.append("<h2>Recent periods</h2>")
    out.append(f'<div class="wide">{history_plot(points)}</div>')
    out += _history_table(points)
    out.append("</main></body></html>")
    return "\n".join(out)
