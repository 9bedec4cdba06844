"""What a rehearsal leaves in its output folder, and the progress line per simulated hour.

- ``index.html``: one page, no script and nothing fetched: the timeline hour by hour (requests,
  captured, selected for review, reviewed, labels written, drift per feature, model quality beside
  the true accuracy of the same predictions, each decision and why), links to every report the loop wrote (copied under ``s3/``), what the
  rehearsal could not take from the templates, and its notes;
- ``summary.json``: ``captured``, ``review_tasks_completed``, ``labels_written``,
  ``drifted_features`` ({feature: periods flagged}), ``retraining_runs``, ``promoted``, the served
  model before and after with the reason, ``unrehearsed`` and ``notes``, and the timeline itself;
- ``s3/<bucket>/<key>``: every object the loop wrote, as it was at the end.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

INDEX, SUMMARY, OBJECTS = "index.html", "summary.json", "s3"


@dataclass
class Decision:
    """Something the loop decided (a review rule, the retraining triggers, the promotion gate) and why."""

    at: str
    what: str
    why: str


@dataclass
class Quality:
    """A model-quality run's figures of one period, as its ``statistics.json`` gives them, and beside
    them what no monitor can know: the true accuracy of the period's captured predictions (the
    rehearsal knows every request's label). The open back end's fields are None for Model Monitor's
    document, which has the headline figures only."""

    figures: dict[str, float]  # the headline figures (binary_classification_metrics): accuracy, f1, auc
    period: str | None = None  # "<start> to <end>" (open_monitor.period)
    basis: str | None = None  # the figures' basis (open_monitor.basis): weighted, reviewed or labelled
    interval: list[float] | None = None  # accuracy's 95 % interval on that basis
    labelled: int | None = None  # labelled rows joined with the period's predictions
    reviewed: float | None = None  # accuracy of the reviewed rows, unweighted (biased by the review rule)
    estimated: float | None = None  # the estimate's accuracy from the scores alone (CBPE)
    estimated_interval: list[float] | None = None
    true: float | None = None  # accuracy of every captured prediction of the period against its true label
    true_rows: int = 0  # the captured predictions whose true label the rehearsal knows


@dataclass
class Hour:
    """What happened in one simulated hour ``[start, end)``, counted from what the loop wrote."""

    index: int
    start: str
    end: str
    requests: int = 0
    captured: int = 0  # records in the capture files written this hour
    selected: int = 0  # rows sent to review (tasks created this hour, their rows)
    tasks_created: int = 0
    reviewed: int = 0  # tasks answered this hour
    labels: int = 0  # ground-truth lines written this hour
    monitor_runs: list[str] = field(default_factory=list)  # "<monitor> <outcome>" of each run this hour
    schedules: dict[str, int] = field(default_factory=dict)  # schedule name -> times it fired this hour
    drift: dict[str, list[str]] = field(default_factory=dict)  # feature -> check types flagged this hour
    quality: list[Quality] = field(default_factory=list)  # each model-quality statistics.json written this hour
    decisions: list[Decision] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)  # paths under OUT/s3/ of the reports written this hour
    wall_seconds: float = 0.0


@dataclass
class Outcome:
    """A whole rehearsal: its settings, its hours and what the loop ended with."""

    environment: str
    hours: list[Hour]
    start: str
    requests: int
    traffic: str
    reviewers: str
    retraining_runs: list[dict[str, Any]] = field(default_factory=list)  # {execution, status, promoted, why}
    served_model: dict[str, Any] = field(default_factory=dict)  # {parameter, before, after, updated, why}
    unrehearsed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seams: list[str] = field(default_factory=list)  # handoffs that broke during the run (errors, parked messages)
    # Each data-quality period's report as it stands at the end (a period re-evaluated with late
    # data counts once): "<schedule>/yyyy/mm/dd/hh" -> the input features it flagged.
    drift_periods: dict[str, list[str]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0

    def drifted_features(self) -> dict[str, int]:
        """Each input feature flagged by a data-quality run, with the number of periods it was flagged in."""
        counts: Counter[str] = Counter()
        for features in self.drift_periods.values():
            counts.update(set(features))
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "start": self.start,
            "hours": len(self.hours),
            "traffic": self.traffic,
            "reviewers": self.reviewers,
            "requests": self.requests,
            "captured": sum(h.captured for h in self.hours),
            "selected": sum(h.selected for h in self.hours),
            "review_tasks_created": sum(h.tasks_created for h in self.hours),
            "review_tasks_completed": sum(h.reviewed for h in self.hours),
            "labels_written": sum(h.labels for h in self.hours),
            "drifted_features": self.drifted_features(),
            "retraining_runs": len(self.retraining_runs),
            "promoted": sum(1 for run in self.retraining_runs if run.get("promoted")),
            "retraining": self.retraining_runs,
            "served_model": self.served_model,
            "unrehearsed": self.unrehearsed,
            "notes": self.notes,
            "seams": self.seams,
            "wall_seconds": round(self.wall_seconds, 1),
            "peak_memory_mb": round(self.peak_memory_mb, 1),
            "timeline": [asdict(hour) for hour in self.hours],
        }


def progress_line(hour: Hour, total: int) -> str:
    """One line per simulated hour while the rehearsal runs."""
    drift = ",".join(sorted(hour.drift)) or "-"
    decisions = "; ".join(grouped(d.what for d in hour.decisions)) or "-"
    quality = "".join(f"  quality {quality_text(q)}" for q in hour.quality)
    return (
        f"[{hour.index + 1:>3}/{total}] {hour.start[:16].replace('T', ' ')} UTC  requests {hour.requests:>4}  captured {hour.captured:>4}  "
        f"selected {hour.selected:>3}  reviewed {hour.reviewed:>3}  labels {hour.labels:>3}  drift {drift}  decisions {decisions}{quality}  "
        f"({hour.wall_seconds:.1f} s)"
    )


def quality_text(quality: Quality) -> str:
    """A model-quality run's figures, each named for what it is: "period ...: accuracy 0.976 [0.965, 0.984]
    weighted, 400 labels; auc 0.997, f1 0.983; reviewed rows 0.912; estimated 0.918 [0.876, 0.963];
    true 0.968 of 2760 predictions"."""

    def interval(bounds: list[float] | None) -> str:
        return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""

    parts, accuracy = [], quality.figures.get("accuracy")
    labels = f", {quality.labelled} labels" if quality.labelled is not None else ""
    if accuracy is not None:
        parts.append(f"accuracy {accuracy:.3f}{interval(quality.interval)}{f' {quality.basis}' if quality.basis else ''}{labels}")
    elif labels:
        parts.append(labels.removeprefix(", "))
    if others := ", ".join(f"{name} {value:.3f}" for name, value in sorted(quality.figures.items()) if name != "accuracy"):
        parts.append(others)
    if quality.reviewed is not None:
        parts.append(f"reviewed rows {quality.reviewed:.3f}")
    if quality.estimated is not None:
        parts.append(f"estimated {quality.estimated:.3f}{interval(quality.estimated_interval)}")
    if quality.true is not None:
        parts.append(f"true {quality.true:.3f} of {quality.true_rows} predictions")
    return (f"period {quality.period}: " if quality.period else "") + "; ".join(parts)


def grouped(texts: Iterable[str]) -> list[str]:
    """Equal texts once each, in order, with how many times they came: "x (3x)"."""
    counts = Counter(texts)
    return [text if count == 1 else f"{text} ({count}x)" for text, count in counts.items()]


def safe_path(root: Path, bucket: str, key: str) -> Path:
    """``root/bucket/key``, refusing a key that would leave ``root`` (``..``, absolute)."""
    parts = PurePosixPath(bucket, key).parts
    if any(part in ("..", "") or part.startswith("/") for part in parts):
        raise ValueError(f"refusing to copy s3://{bucket}/{key}: the key leaves the output folder")
    return root.joinpath(*parts)


def copy_objects(objects: Iterable[tuple[str, str, bytes]], out: Path) -> int:
    """Write each ``(bucket, key, body)`` to ``out/s3/<bucket>/<key>``; a key that is also a
    "folder" of another key (``a`` and ``a/b``) keeps its body in ``a/_object``. What an earlier
    rehearsal left under ``out/s3/`` is removed first: the folder holds this run's objects only."""
    root, count = out / OBJECTS, 0
    if root.is_dir():
        shutil.rmtree(root)
    for bucket, key, body in objects:
        path = safe_path(root, bucket, key if not key.endswith("/") else key + "_object")
        if path.is_dir():
            path = path / "_object"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        count += 1
    return count


def grouped_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    counts = Counter(pairs)
    return [(what if count == 1 else f"{what} ({count}x)", why) for (what, why), count in counts.items()]


def report_label(path: str) -> str:
    """"data-quality 2026/11/23/03h" for a monitor's report.html under OUT/s3/."""
    monitor, _, rest = path.partition("/reports/")
    period = "/".join(rest.split("/")[-5:-1])
    return f"{monitor.rsplit('/', 1)[-1]} {period}h"


def link(path: str) -> str:
    return f"{OBJECTS}/{path}"


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1b1b;max-width:1500px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#555;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{border:1px solid #ccd;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:13px}
th,td{border-bottom:1px solid #e3e3ea;padding:4px 5px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f8;position:sticky;top:0;font-size:12px;overflow-wrap:normal} td.n{text-align:right;font-variant-numeric:tabular-nums}
.drift{background:#fde2e1;border-radius:3px;padding:0 4px;margin:0 3px 2px 0;display:inline-block}
.ok{color:#2a7a2a} .dec{margin:0;padding-left:16px} .why{color:#555}
ul.reports{margin:0;padding-left:16px;font-size:12px}
"""


def _cell(value: int) -> str:
    return f'<td class="n">{value or ""}</td>'


def _hour_row(hour: Hour) -> str:
    drift = "".join(f'<span class="drift" title="{html.escape(", ".join(checks))}">{html.escape(feature)}</span>' for feature, checks in sorted(hour.drift.items()))
    if not drift and any(run.startswith("data-quality") for run in hour.monitor_runs):
        drift = '<span class="ok">none</span>'
    quality = "<br>".join(html.escape(quality_text(q)) for q in hour.quality)
    runs = "<br>".join(html.escape(run) for run in hour.monitor_runs)
    schedules = ", ".join(html.escape(name if times == 1 else f"{name} ({times}x)") for name, times in sorted(hour.schedules.items()))
    decisions = "".join(
        f'<li>{html.escape(what)} <span class="why">— {html.escape(why)}</span></li>'
        for what, why in grouped_pairs((d.what, d.why) for d in hour.decisions)
    )
    monitors = [path for path in hour.reports if "/reports/" in path]
    loops = [path for path in hour.reports if "/reports/" not in path]
    reports = "".join(f'<li><a href="{html.escape(link(path))}">{html.escape(report_label(path))}</a></li>' for path in monitors)
    if loops:
        reports += "<li>review loops: " + " ".join(f'<a href="{html.escape(link(path))}">{number}</a>' for number, path in enumerate(loops, 1)) + "</li>"
    return (
        f"<tr><td>{html.escape(hour.start[11:16])}<br><small>{html.escape(hour.start[:10])}</small></td>"
        + "".join(_cell(v) for v in (hour.requests, hour.captured, hour.selected, hour.reviewed, hour.labels))
        + f"<td><small>{schedules}</small></td><td>{runs}</td><td>{drift}</td><td>{quality}</td>"
        + f'<td><ul class="dec">{decisions}</ul></td><td><ul class="reports">{reports}</ul></td></tr>'
    )


def render(outcome: Outcome) -> str:
    summary = outcome.summary()
    cards = [
        ("requests", summary["requests"]), ("captured", summary["captured"]), ("selected for review", summary["selected"]),
        ("review tasks completed", summary["review_tasks_completed"]), ("labels written", summary["labels_written"]),
        ("drifted features", len(summary["drifted_features"])), ("retraining runs", summary["retraining_runs"]), ("promoted", summary["promoted"]),
    ]  # fmt: skip
    served = outcome.served_model
    retraining = "".join(
        f"<li><b>{html.escape(str(run.get('execution', '')))}</b>: {html.escape(str(run.get('status', '')))}, "
        f"{'promoted' if run.get('promoted') else 'not promoted'} <span class=\"why\">— {html.escape(str(run.get('why', '')))}</span></li>"
        for run in outcome.retraining_runs
    ) or "<li>none started</li>"
    drifted = ", ".join(f"{html.escape(f)} ({n})" for f, n in summary["drifted_features"].items()) or "none"

    def items(values: Iterable[str]) -> str:
        return "".join(f"<li>{html.escape(v)}</li>" for v in values) or "<li>none</li>"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rehearsal of {html.escape(outcome.environment)}: {len(outcome.hours)} hours</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body>
<h1>Rehearsal of the loop: environment {html.escape(outcome.environment)}, {len(outcome.hours)} simulated hours</h1>
<div class="meta">from {html.escape(outcome.start)} · traffic: {html.escape(outcome.traffic)} · reviewers: {html.escape(outcome.reviewers)} ·
ran in {outcome.wall_seconds:.0f} s, peak memory {outcome.peak_memory_mb:.0f} MB · every object the loop wrote is under <a href="{OBJECTS}/">{OBJECTS}/</a>,
the figures in <a href="{SUMMARY}">{SUMMARY}</a></div>
<div class="cards">{"".join(f'<div class="card"><b>{value}</b>{html.escape(name)}</div>' for name, value in cards)}</div>
<p>Drifted features (periods flagged): {drifted}.</p>
<p>Served model ({html.escape(str(served.get("parameter", "")))}): {"updated" if served.get("updated") else "kept"}
<span class="why">— {html.escape(str(served.get("why", "")))}</span></p>
<h2>Retraining</h2><ul>{retraining}</ul>
<h2>Timeline</h2>
<table><colgroup><col style="width:5%">{'<col style="width:5.8%">' * 5}<col style="width:8%"><col style="width:10%"><col style="width:8%">
<col style="width:14%"><col style="width:16%"><col style="width:10%"></colgroup><thead><tr><th>hour (UTC)</th><th>requests</th><th>captured</th><th>selected</th><th>reviewed</th><th>labels</th>
<th>schedules fired</th><th>monitor runs</th><th>drift per feature</th><th>quality</th><th>decisions and why</th><th>reports</th></tr></thead>
<tbody>{"".join(_hour_row(hour) for hour in outcome.hours)}</tbody></table>
<h2>Not rehearsed</h2><ul>{items(outcome.unrehearsed)}</ul>
<h2>Seams found during the run</h2><ul>{items(outcome.seams)}</ul>
<h2>Notes</h2><ul>{items(outcome.notes)}</ul>
</body></html>
"""


def write(outcome: Outcome, out: Path) -> dict[str, Any]:
    """``index.html`` and ``summary.json`` into ``out`` (the objects are copied by ``copy_objects``)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = outcome.summary()
    (out / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / INDEX).write_text(render(outcome))
    return summary


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def merge_counts(target: dict[str, list[str]], flagged: Mapping[str, Iterable[str]]) -> None:
    for feature, checks in flagged.items():
        target.setdefault(feature, [])
        target[feature] = sorted(set(target[feature]) | set(checks))
