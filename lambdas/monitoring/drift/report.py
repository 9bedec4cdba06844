"""The evaluation of a period as one self-contained HTML page (seed 001's visualisation, without a notebook).

The page has a header (environment, period, captures read, rows, rejected lines and their
reasons, the drift test with its family-wise false-alarm rate), the violations table (with each
feature's drift distance, largest first), and per column a card, drifted columns first: the verdict
with the distance and the column's KS critical value at the level Holm's procedure judged it (or
"too few values to judge" when the period has fewer values than can ever pass the strictest, first
step), the baseline's and the period's mean, minimum and maximum, how many values lie outside the
baseline's range, and a plot of both cumulative distributions at the baseline's bin edges (inline
SVG) on an axis that spans the baseline's range: values beyond it are drawn at its ends and counted
in the note, so a few outliers do not flatten the curves. No script, no external style, image or font; every value that comes from data is
HTML-escaped. The plots read without colour: the baseline is a solid line, the period a dashed one,
and the largest gap (the drift distance) is marked and labelled; their text is at least 11 px on
the narrowest card (``CARD_MIN_PX``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from lambdas.monitoring.drift.baseline import CUSTOM, quantile_bins
from lambdas.monitoring.drift.evaluate import BASELINE_DRIFT, Evaluation, FeatureDrift

REPORT_FILE = "report.html"
BASELINE_COLOUR, CURRENT_COLOUR = "#1f5fa8", "#c2410c"
# Plot geometry in SVG user units; the SVG scales to its card's width (a phone's 390 px included).
# The narrowest card is CARD_MIN_PX wide, CARD_CHROME_PX of it padding and border, so a user unit is
# at least (300 - 20) / 320 = 0.875 px there: FONT_UNITS 13 is 11.4 px, readable.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 320, 220, 34, 12, 30, 38
CARD_MIN_PX, CARD_CHROME_PX = 300, 20
FONT_UNITS = 13


@dataclass(frozen=True)
class CaptureFile:
    """What was read from one capture file."""

    name: str
    records: int
    rows: int
    rejected: int


@dataclass(frozen=True)
class Period:
    """What the report's header says about the period's input."""

    environment: str
    captures: tuple[CaptureFile, ...] = ()
    first_inference: str | None = None
    last_inference: str | None = None
    rejected_reasons: Mapping[str, int] = field(default_factory=dict)  # capture lines set aside, by reason
    # The deployed evaluator reads sketch files, not captures: it gives the period it evaluated and
    # how many sketch files it read in place of the captures and their inference times.
    window: str | None = None
    sketch_files: int | None = None
    # A deployed period evaluated again because sketch files came after its report: what and when.
    re_evaluated: str | None = None

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.captures)

    @property
    def rejected(self) -> int:
        return sum(c.rejected for c in self.captures)


def drift_test(evaluation: Evaluation) -> str:
    """The period's drift rule in one line, for the report's header and the CLI's summary."""
    threshold = evaluation.statistics.get(CUSTOM, {}).get("drift_test", {}).get("comparison_threshold")
    floor = f"; a drift also needs a distance above {threshold:g}" if threshold is not None else ""
    return (
        f"two-sample Kolmogorov-Smirnov per column, {evaluation.drift_rule}: a period drawn from the baseline's "
        f"distribution flags any column at most {evaluation.alpha * 100:g} % of the time{floor}"
    )


def cumulative(buckets: Sequence[Mapping[str, Any]]) -> list[tuple[float, float]]:
    """(value, share of values <= value) at the lower bound of the first bucket and every upper bound."""
    total = sum(int(b["count"]) for b in buckets)
    if not total:
        return []
    points = [(float(buckets[0]["lower_bound"]), 0.0)]
    below = 0
    for bucket in buckets:
        below += int(bucket["count"])
        points.append((float(bucket["upper_bound"]), below / total))
    return points


def _buckets(statistics: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Each feature's sketch bins (``baseline.quantile_bins``): what the plots are drawn from."""
    return {f["name"]: quantile_bins(f) for f in statistics.get("features", [])}


def _features(statistics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["name"]: f for f in statistics.get("features", [])}


def _number(value: float) -> str:
    return f"{value:.4g}"


def plot(name: str, baseline: list[tuple[float, float]], current: list[tuple[float, float]], drift: FeatureDrift | None) -> str:
    """An SVG of both cumulative distributions over the baseline's range, the largest gap marked.

    The axis runs from the baseline's first point to its last (its minimum and maximum); the
    period's points beyond them are drawn at the axis ends (its curve rises there), so a few
    outliers cannot squeeze both curves against one edge. The card says how many values lie beyond.
    """
    title = f"Cumulative distribution of {name}: baseline (solid) and current period (dashed)"
    values = [x for x, _ in baseline] or [x for x, _ in current]
    low, high = min(values), max(values)
    if high == low:  # a constant baseline column: a range around it
        half = max(abs(low), 1.0) / 2
        low, high = low - half, high + half
    span = high - low
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(value: float) -> float:
        return LEFT + (min(max(value, low), high) - low) / span * inner_w

    def y_of(share: float) -> float:
        return TOP + (1 - share) * inner_h

    def path(points: list[tuple[float, float]]) -> str:
        return " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in points)

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" class="plot">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fff" stroke="#999" stroke-width="0.5"/>',
    ]
    for share in (0.0, 0.5, 1.0):
        y = y_of(share)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#ddd" stroke-width="0.5"/>')
        parts.append(f'<text x="{LEFT - 3}" y="{y + 4:.1f}" text-anchor="end" class="tick">{share:g}</text>')
    for value, anchor in ((low, "start"), (high, "end")):
        parts.append(
            f'<text x="{x_of(value):.1f}" y="{HEIGHT - BOTTOM + FONT_UNITS + 2}" text-anchor="{anchor}" class="tick">'
            f"{escape(_number(value))}</text>"
        )
    parts.append(
        f'<text x="{LEFT + inner_w / 2:.1f}" y="{HEIGHT - 5}" text-anchor="middle" class="tick">value of {escape(name)}</text>'
    )
    if baseline:
        parts.append(f'<polyline points="{path(baseline)}" fill="none" stroke="{BASELINE_COLOUR}" stroke-width="1.6"/>')
    if current:
        parts.append(
            f'<polyline points="{path(current)}" fill="none" stroke="{CURRENT_COLOUR}" stroke-width="1.6" stroke-dasharray="5 3"/>'
        )
        gap = _largest_gap(baseline, current)
        if gap is not None:
            value, below, above = gap
            x = x_of(value)
            parts.append(
                f'<line x1="{x:.1f}" y1="{y_of(below):.1f}" x2="{x:.1f}" y2="{y_of(above):.1f}" stroke="#111" stroke-width="1.2"/>'
            )
            label = f"D = {drift.distance:.3f}" if drift is not None and drift.distance is not None else "largest gap"
            anchor = "start" if x < LEFT + inner_w / 2 else "end"
            offset = 4 if anchor == "start" else -4
            parts.append(
                f'<text x="{x + offset:.1f}" y="{y_of((below + above) / 2) + 4:.1f}" text-anchor="{anchor}" class="gap">{escape(label)}</text>'
            )
    # Legend: line samples with text, so it reads in grey scale too.
    parts.append(f'<line x1="{LEFT}" y1="12" x2="{LEFT + 20}" y2="12" stroke="{BASELINE_COLOUR}" stroke-width="1.6"/>')
    parts.append(f'<text x="{LEFT + 24}" y="16" class="legend">baseline</text>')
    parts.append(
        f'<line x1="{LEFT + 96}" y1="12" x2="{LEFT + 116}" y2="12" stroke="{CURRENT_COLOUR}" stroke-width="1.6" stroke-dasharray="5 3"/>'
    )
    legend = "period" if current else "period: no values"
    parts.append(f'<text x="{LEFT + 120}" y="16" class="legend">{legend}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _summary(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """A card's numbers: mean, min and max as baseline -> period, the values outside the baseline's
    range (``open_monitor.num_below_baseline_min`` / ``num_above_baseline_max``), and the values
    beyond the float32 range (counted apart)."""
    base, now = baseline.get("numerical_statistics", {}), current.get("numerical_statistics", {})
    custom = current.get(CUSTOM, {})
    lines = []
    if "mean" in now and "mean" in base:
        cells = [f"{what} {escape(_number(base[what]))} &#8594; {escape(_number(now[what]))}" for what in ("mean", "min", "max")]
        lines.append(f'<p class="stats">{"; ".join(cells)}</p>')
        below, above = int(custom.get("num_below_baseline_min", 0)), int(custom.get("num_above_baseline_max", 0))
        finite = sum(int(b["count"]) for b in quantile_bins(current)) if current else 0
        if below or above:
            lines.append(
                f'<p class="note"><strong>{below + above} of {finite} values outside the baseline\'s range</strong> '
                f"[{escape(_number(base['min']))}, {escape(_number(base['max']))}]: {below} below, {above} above "
                "(drawn at the axis ends)</p>"
            )
        else:
            lines.append(f'<p class="note">All {finite} values within the baseline\'s range.</p>')
    outside = int(custom.get("num_out_of_range", 0))
    if outside:
        lines.append(f'<p class="note flag">{outside} out of range (beyond the float32 range): counted apart, not plotted</p>')
    return lines


def _largest_gap(baseline: list[tuple[float, float]], current: list[tuple[float, float]]) -> tuple[float, float, float] | None:
    """(value, lower share, higher share) at the baseline edge where the two distributions differ most.

    Both lists hold the same bins (the baseline's edges as inner bounds), so the shares are compared
    at the same edges; the outer bounds (observed minimum and maximum) are left out.
    """
    best = None
    for (value, b), (_, c) in zip(baseline[1:-1], current[1:-1], strict=True):
        if best is None or abs(b - c) > best[0]:
            best = (abs(b - c), value, min(b, c), max(b, c))
    return None if best is None or best[0] == 0 else best[1:]


CSS = f"""
body{{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:12px;color:#111;background:#f6f6f4}}
main{{max-width:980px;margin:0 auto}}
h1{{font-size:1.3em;margin:.2em 0 .4em}}h2{{font-size:1.1em;margin:1.2em 0 .4em}}h3{{font-size:1em;margin:0 0 .2em;overflow-wrap:anywhere}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.1em .8em;margin:0}}dt{{font-weight:600}}dd{{margin:0;overflow-wrap:anywhere}}
table{{border-collapse:collapse;width:100%;background:#fff}}th,td{{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:break-word}}
td:last-child{{overflow-wrap:anywhere}}
.features{{display:grid;grid-template-columns:repeat(auto-fill,minmax({CARD_MIN_PX}px,1fr));gap:10px}}
.feature{{background:#fff;border:1px solid #ccc;padding:8px}}.feature.drifted{{border:2px solid #b91c1c}}.feature.unjudged{{border-style:dashed}}
.flag{{font-weight:700;color:#b91c1c}}.ok{{color:#166534}}.note{{font-size:.9em;color:#444;margin:.2em 0}}
.plot{{width:100%;height:auto;display:block}}.tick{{font-size:{FONT_UNITS}px;fill:#333}}.legend{{font-size:{FONT_UNITS}px;fill:#111}}.gap{{font-size:{FONT_UNITS}px;font-weight:700;fill:#111}}
.stats{{font-size:.9em;margin:.2em 0;font-variant-numeric:tabular-nums}}
ul{{margin:.2em 0;padding-left:1.2em}}li{{overflow-wrap:anywhere}}
@media (max-width:560px){{thead{{display:none}}table,tbody,tr,td{{display:block}}tr{{border:1px solid #ccc;margin-bottom:6px}}
td{{border:0;padding:2px 6px}}td:first-child{{font-weight:700}}}}
"""


def render(evaluation: Evaluation, baseline_statistics: Mapping[str, Any], period: Period) -> str:
    """The report page of ``evaluation`` against the baseline whose ``statistics.json`` is given."""
    e = escape
    violations = evaluation.violations.get("violations", [])
    by_feature: dict[str, list[Mapping[str, str]]] = {}
    for violation in violations:
        by_feature.setdefault(violation["feature_name"], []).append(violation)
    drift = {d.name: d for d in evaluation.drift}
    baseline_buckets, current_buckets = _buckets(baseline_statistics), _buckets(evaluation.statistics)
    baseline_features, current_features = _features(baseline_statistics), _features(evaluation.statistics)
    names = [f["name"] for f in baseline_statistics.get("features", [])]
    too_few = evaluation.too_few

    def order(name: str) -> tuple[bool, bool, float]:
        found = drift.get(name)
        distance = found.distance if found is not None and found.distance is not None else -1.0
        return (not (found is not None and found.drifted), name not in by_feature, -distance)

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Data-quality report: {e(period.environment)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Data-quality report: {e(period.environment)}</h1>",
        "<dl>",
        f"<dt>Environment</dt><dd>{e(period.environment)}</dd>",
    ]
    if period.window:
        out.append(f"<dt>Period</dt><dd>{e(period.window)}</dd>")
    elif period.first_inference or period.last_inference:
        first, last = e(period.first_inference or "?"), e(period.last_inference or "?")
        out.append(f"<dt>Period</dt><dd>{first} to {last} (inference times)</dd>")
    if period.re_evaluated:
        out.append(f'<dt>Late data</dt><dd class="flag">{e(period.re_evaluated)}</dd>')
    if period.sketch_files is not None:
        out.append(f"<dt>Sketch files</dt><dd>{period.sketch_files} (one per capture object)</dd>")
    else:
        out.append(f"<dt>Captures read</dt><dd>{len(period.captures)} file(s)</dd>")
    out.append(f"<dt>Rows</dt><dd>{evaluation.statistics.get('dataset', {}).get('item_count', 0)} profiled</dd>")
    if period.sketch_files is None:
        out.append(f"<dt>Rejected lines</dt><dd>{period.rejected}</dd>")
    out.append(f"<dt>Violations</dt><dd>{len(violations)} in {len(by_feature)} column(s)</dd>")
    if evaluation.drift:
        out.append(f"<dt>Drift test</dt><dd>{e(drift_test(evaluation))}</dd>")
    out.append("</dl>")
    if period.captures:
        out.append("<ul>")
        for capture in period.captures:
            out.append(
                f"<li>{e(capture.name)}: {capture.records} record(s), {capture.rows} row(s), {capture.rejected} rejected</li>"
            )
        out.append("</ul>")
    if period.rejected_reasons:
        out.append("<h2>Rejected capture lines</h2><ul>")
        out += [f"<li>{e(reason)}: {count}</li>" for reason, count in period.rejected_reasons.items()]
        out.append("</ul>")
    rows_rejected = evaluation.statistics.get("open_monitor", {}).get("rows_rejected", {})
    if rows_rejected:
        out.append("<h2>Rows not profiled</h2><ul>")
        out += [f"<li>{e(str(reason))}: {count}</li>" for reason, count in rows_rejected.items()]
        out.append("</ul>")
    if evaluation.skipped:
        out.append("<h2>Sketches set aside</h2><ul>")
        out += [f"<li>{e(name)}: {e(reason)}</li>" for name, reason in evaluation.skipped]
        out.append("</ul>")
    if evaluation.no_data:
        out.append(f'<p class="flag">No comparison: {e(evaluation.no_data)}</p>')

    out.append("<h2>Violations</h2>")
    if too_few:
        out.append(
            f'<p class="flag">Drift: {e(too_few)}. A period this small cannot show drift whatever its values; '
            "the completeness and type checks still apply.</p>"
        )
    if violations:

        def distance_of(violation: Mapping[str, str]) -> float:
            found = drift.get(violation["feature_name"])
            return found.distance if found is not None and found.distance is not None else -1.0

        out.append("<table><thead><tr><th>Feature</th><th>Check</th><th>Distance</th><th>Description</th></tr></thead><tbody>")
        for violation in sorted(violations, key=distance_of, reverse=True):  # stable: ties keep their order
            distance = distance_of(violation)
            out.append(
                f"<tr><td>{e(violation['feature_name'])}</td><td>{e(violation['constraint_check_type'])}</td>"
                f"<td>{f'{distance:.4f}' if distance >= 0 else '-'}</td><td>{e(violation['description'])}</td></tr>"
            )
        out.append("</tbody></table>")
    elif too_few:
        out.append('<p class="ok">No completeness or data-type violations.</p>')
    else:
        out.append('<p class="ok">No violations.</p>')

    out.append("<h2>Distributions: baseline versus current period</h2>")
    out.append(
        '<p class="note">Share of values at or below each baseline bin edge, on an axis spanning the baseline\'s range '
        "(values beyond it are drawn at its ends and counted above the plot). Baseline: solid line; current period: "
        "dashed line; the black bar marks the largest gap (the drift distance D). Each card gives the baseline's "
        "and the period's mean, minimum and maximum as baseline &#8594; period.</p>"
    )
    out.append('<div class="features">')
    for name in sorted(names, key=order):
        found = drift.get(name)
        drifted = found is not None and found.drifted
        flags = [v["constraint_check_type"] for v in by_feature.get(name, [])]
        judged = found is None or found.distance is None or found.judged
        out.append(f'<section class="feature{" drifted" if drifted else ""}{"" if judged else " unjudged"}"><h3>{e(name)}</h3>')
        if found is not None and found.distance is not None:
            if drifted:
                verdict = '<span class="flag">DRIFT</span>'
            elif judged:
                verdict = '<span class="ok">no drift</span>'
            else:
                verdict = f'<span class="flag">too few values to judge: {found.current_count} values, at least {found.needed} needed</span>' if found.needed else '<span class="flag">too few values to judge: the baseline is too small</span>'
            out.append(
                f'<p class="note">{verdict}: distance {found.distance:.4f}, '
                f"KS critical value {found.critical_value:.4f} (at alpha {found.level:.3g}, Holm); "
                f"{found.baseline_count} baseline, {found.current_count} current values</p>"
            )
        elif found is not None:
            out.append(f'<p class="note">No finite current values ({found.baseline_count} baseline values).</p>')
        if flags and any(f != BASELINE_DRIFT for f in flags):
            out.append(f'<p class="note flag">{e(", ".join(f for f in flags if f != BASELINE_DRIFT))}</p>')
        if not evaluation.no_data:
            out += _summary(baseline_features.get(name, {}), current_features.get(name, {}))
        baseline_points = cumulative(baseline_buckets.get(name, []))
        current_points = cumulative(current_buckets.get(name, [])) if not evaluation.no_data else []
        out.append(plot(name, baseline_points, current_points, found))
        out.append("</section>")
    out.append("</div></main></body></html>")
    return "\n".join(out)


# --- feature attribution (the open back end's explainability report) ------------------------------

ATTRIBUTION_CSS = """
.bars{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:8px}
.bar-feature{background:#fff;border:1px solid #ccc;padding:6px 8px}.bar-feature.moved{border:2px solid #b91c1c}
.bar-row{display:grid;grid-template-columns:4.6em 1fr 4.2em;gap:6px;align-items:center;font-size:.9em}
.track{display:block;height:12px;background:#eee;border:1px solid #ccc}
.bar{display:block;height:100%}.bar.base{background:#1f5fa8}
.bar.cur{background:repeating-linear-gradient(135deg,#c2410c 0 4px,#f3c3a8 4px 7px)}
.value{text-align:right;font-variant-numeric:tabular-nums}
"""


@dataclass(frozen=True)
class AttributionRun:
    """What the attribution report's header says about the run and its input."""

    environment: str
    window: str
    label: str
    threshold: float
    model: str | None = None
    sample_files: int = 0
    rows_sampled: int = 0
    rows_explained: int = 0
    rows_not_explained: Mapping[str, int] = field(default_factory=dict)
    set_aside: Sequence[tuple[str, str]] = ()  # (sample file, reason)
    no_data: str | None = None
    failure: str | None = None


def _bar_row(caption: str, css: str, value: float, largest: float) -> str:
    width = 100 * value / largest if largest else 0.0
    return (
        f'<div class="bar-row"><span>{caption}</span><span class="track"><span class="bar {css}" style="width:{width:.1f}%"></span></span>'
        f'<span class="value">{value:.4f}</span></div>'
    )


def render_attribution(
    baseline: Mapping[str, float],
    current: Mapping[str, float],
    ndcg: float | None,
    violations: Sequence[Mapping[str, Any]],
    run: AttributionRun,
) -> str:
    """The feature-attribution page: the header, the verdict, and per feature the baseline's and the
    period's mean |SHAP| as bars on one scale, in the baseline's order (solid: baseline; striped:
    period, so it reads without colour), each with its rank in both. Features neither ranks above 0
    are named in one line. ``current`` is empty when the period had nothing to explain."""
    e = escape
    title = f"Feature-attribution report: {e(run.environment)}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title>",
        f"<style>{CSS}{ATTRIBUTION_CSS}</style></head><body><main>",
        f"<h1>{title}</h1>",
        "<dl>",
        f"<dt>Environment</dt><dd>{e(run.environment)}</dd>",
        f"<dt>Period</dt><dd>{e(run.window)}</dd>",
        f"<dt>Model</dt><dd>{e(run.model or 'not loaded')}</dd>",
        f"<dt>Label</dt><dd>{e(run.label)}</dd>",
        f"<dt>Sample files</dt><dd>{run.sample_files} read, {len(run.set_aside)} set aside</dd>",
        f"<dt>Rows</dt><dd>{run.rows_sampled} sampled, {run.rows_explained} explained (exact TreeSHAP)</dd>",
    ]
    if ndcg is not None:
        verdict = "below" if ndcg < run.threshold else "at or above"
        drifted = ": the ranking drifted" if ndcg < run.threshold else ""
        out.append(f"<dt>nDCG</dt><dd>{ndcg:.4f}, {verdict} the threshold {run.threshold:g}{drifted}</dd>")
    out.append(f"<dt>Violations</dt><dd>{len(violations)}</dd>")
    out.append("</dl>")
    if run.failure:
        out.append(f'<p class="flag">Run failed: {e(run.failure)}</p>')
    if run.no_data:
        out.append(f'<p class="flag">No comparison: {e(run.no_data)}</p>')
    if run.rows_not_explained:
        out.append("<h2>Rows not explained</h2><ul>")
        out += [f"<li>{e(str(reason))}: {count}</li>" for reason, count in run.rows_not_explained.items()]
        out.append("</ul>")
    if run.set_aside:
        out.append("<h2>Sample files set aside</h2><ul>")
        out += [f"<li>{e(name)}: {e(reason)}</li>" for name, reason in run.set_aside]
        out.append("</ul>")

    out.append("<h2>Violations</h2>")
    if violations:
        out.append("<table><thead><tr><th>Label</th><th>Check</th><th>Description</th></tr></thead><tbody>")
        for violation in violations:
            out.append(
                f"<tr><td>{e(str(violation.get('label')))}</td><td>{e(str(violation.get('constraint_check_type')))}</td>"
                f"<td>{e(str(violation.get('description')))}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append('<p class="ok">No violations.</p>')

    if not baseline:
        out.append("</main></body></html>")
        return "\n".join(out)
    out.append("<h2>Mean |SHAP| per feature: baseline versus this period</h2>")
    out.append(
        '<p class="note">Global SHAP value (mean absolute SHAP value over the rows, in log-odds) of each feature, '
        "in the baseline's order. Solid bar: baseline; striped bar: this period; both on one scale. "
        "A red border marks a feature whose rank changed by more than two places.</p>"
    )
    baseline_ranks = _attribution_ranks(baseline)
    current_ranks = _attribution_ranks(current) if current else {}
    largest = max([*baseline.values(), *current.values()], default=0.0)
    silent = [n for n in baseline if baseline[n] == 0 and not current.get(n)]
    out.append('<div class="bars">')
    for name in sorted((n for n in baseline if n not in silent), key=lambda n: (baseline_ranks[n], n)):
        now = current_ranks.get(name)
        moved = now is not None and abs(now - baseline_ranks[name]) > 2
        rank = f"#{baseline_ranks[name]} in the baseline" + (f", #{now} now" if now is not None else "")
        out.append(f'<section class="bar-feature{" moved" if moved else ""}"><h3>{e(name)}</h3><p class="note">{rank}</p>')
        out.append(_bar_row("baseline", "base", baseline[name], largest))
        if current:
            out.append(_bar_row("period", "cur", current.get(name, 0.0), largest))
        out.append("</section>")
    out.append("</div>")
    if silent:
        out.append(f'<p class="note">No attribution in either ({len(silent)}): {e(", ".join(silent))}.</p>')
    out.append("</main></body></html>")
    return "\n".join(out)


def _attribution_ranks(values: Mapping[str, float]) -> dict[str, int]:
    """1-based rank by attribution, tied features sharing the best rank."""
    ordered = sorted(values.values(), reverse=True)
    first = {}
    for position, value in enumerate(ordered, start=1):
        first.setdefault(value, position)
    return {name: first[value] for name, value in values.items()}
