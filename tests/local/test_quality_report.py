"""`make quality-report`: the deployed monitor's code on local capture and ground-truth files.

The capture file is the committed held-out sample (``samples/captures/held-out.jsonl``: the 114
test rows with the bundled model's scores); the labels are the test rows' true labels, written in
Model Monitor's ground-truth format by the test, keyed by the sample's event IDs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk

from local import quality_report
from local.cli import UsageError
from stacks.shared.config import parse_environment
from stacks.shared.default_model import TEST_CSV
from stacks.shared.default_model.captures import HELD_OUT, HELD_OUT_LABELS, SAMPLES_DIR
from tests.conftest import CDK_CONTEXT

ROOT = Path(__file__).resolve().parents[2]
CAPTURE = SAMPLES_DIR / HELD_OUT


@pytest.fixture(scope="module")
def sample() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(event IDs, scores, true labels) of the held-out sample's rows, in order."""
    records = [json.loads(line) for line in CAPTURE.read_text().splitlines()]
    ids = [r["eventMetadata"]["eventId"] for r in records]
    scores = np.array([float(r["captureData"]["endpointOutput"]["data"]) for r in records])
    return ids, scores, np.loadtxt(TEST_CSV, delimiter=",")[:, 0].astype(int)


def write_labels(path: Path, ids: list[str], values, sampling=None, extra: list[str] = ()) -> Path:
    lines = []
    for index, (event, value) in enumerate(zip(ids, values, strict=True)):
        record = {"groundTruthData": {"data": str(int(value)), "encoding": "CSV"}, "eventMetadata": {"eventId": event}, "eventVersion": "0"}
        if sampling is not None:
            record["sampling"] = sampling(index)
        lines.append(json.dumps(record))
    path.write_text("\n".join([*lines, *extra]) + "\n")
    return path


def test_labelled_capture_files_give_the_figures_the_monitor_gives(tmp_path, sample, capsys):
    ids, scores, truth = sample
    probability = {index: (1.0 if 0.1 < scores[index] < 0.9 else 0.25) for index in range(len(ids))}
    labels = write_labels(
        tmp_path / "labels.jsonl", ids, truth, lambda i: {"inclusionProbability": probability[i], "selectedBy": "rule" if probability[i] == 1.0 else "audit"}
    )
    out = tmp_path / "report"
    assert quality_report.main([str(CAPTURE), "--labels", str(labels), "--out", str(out)]) == 0

    assert sorted(p.name for p in out.iterdir()) == ["constraint_violations.json", "report.html", "statistics.json"]
    statistics = json.loads((out / "statistics.json").read_text())
    predicted = (scores >= 0.5).astype(int)
    # Every row is labelled: whatever the labels say of their probabilities, each row stands for
    # itself (dev's rule and audit are known, so the weights come from the counts; evaluation._weights).
    weights = np.ones(len(ids))
    documented = statistics["binary_classification_metrics"]
    assert documented["accuracy"]["value"] == pytest.approx(sk.accuracy_score(truth, predicted, sample_weight=weights), abs=1e-9)
    assert documented["auc"]["value"] == pytest.approx(sk.roc_auc_score(truth, scores, sample_weight=weights), abs=1e-9)
    assert statistics["open_monitor"]["basis"] == "weighted" and statistics["open_monitor"]["labels"]["joined"] == 114
    # dev reviews the band with a 2 % audit: the sample's rows the rule selects are all labelled.
    response = statistics["open_monitor"]["labels"]["response"]["rule"]
    assert response["selected"] == response["labelled"] == int(((scores > 0.1) & (scores < 0.9)).sum())
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}
    html = (out / "report.html").read_text()
    assert "Model-quality report: dev" in html and "Weighted: all predictions" in html and "Unweighted: reviewed rows" in html
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].startswith("weighted: each labelled row counts for an equal share of its review stratum's captured rows")
    assert "warning" not in printed  # every stratum the review chose from is labelled
    assert "114 label(s), 114 joined, 0 for no captured row, 0 line(s) set aside" in printed


def test_without_labels_it_writes_the_estimate_only(tmp_path, capsys):
    out = tmp_path / "estimate"
    assert quality_report.main([str(CAPTURE), "--out", str(out)]) == 0
    statistics = json.loads((out / "statistics.json").read_text())
    assert "binary_classification_metrics" not in statistics and statistics["dataset"] == {"item_count": 0}
    estimated = statistics["open_monitor"]["estimate"]["figures"]
    assert estimated["accuracy"]["value"] == pytest.approx(0.9508, abs=1e-3)
    low, high = estimated["accuracy"]["interval_95"]
    assert low < 0.9508 < high
    assert capsys.readouterr().out.startswith("estimated (from the scores, no labels; 114 rows): accuracy 0.9508")


def test_bad_labels_are_set_aside_counted_and_the_good_ones_evaluated(tmp_path, sample, capsys):
    ids, scores, truth = sample
    wrong = 1 - (scores >= 0.5).astype(int)  # reviewers disagree with the model on every row
    labels = write_labels(tmp_path / "labels.jsonl", ids, wrong, extra=['{"broken', json.dumps({"groundTruthData": {"data": "1"}, "eventMetadata": {"eventId": "nobody"}})])
    out = tmp_path / "bad"
    assert quality_report.main([str(CAPTURE), "--labels", str(labels), "--out", str(out)]) == 0
    statistics = json.loads((out / "statistics.json").read_text())
    intake = statistics["open_monitor"]["intake"]
    assert intake["labels"] == 115 and intake["unknown_ids"] == 1 and intake["rejected_lines"] == 1
    [parked] = [json.loads(line) for line in (out / "rejected_labels.jsonl").read_text().splitlines()]
    assert parked["line"] == 115 and parked["reason"].startswith("not JSON") and parked["text"] == '{"broken'
    assert statistics["open_monitor"]["basis"] == "labelled"  # uploads without sampling: unweighted
    violations = json.loads((out / "constraint_violations.json").read_text())["violations"]
    assert {v["metric_name"] for v in violations} == {"accuracy", "precision", "recall", "f1", "auc"}
    assert "accuracy: LessThanThreshold: Metric accuracy with 0" in capsys.readouterr().out


def test_a_later_labels_file_wins_for_a_row_labelled_twice(tmp_path, sample):
    ids, _, truth = sample
    first = write_labels(tmp_path / "first.jsonl", ids, truth)
    second = write_labels(tmp_path / "second.jsonl", ids[:1], [1 - truth[0]])
    out = tmp_path / "twice"
    assert quality_report.main([str(CAPTURE), "--labels", str(first), str(second), "--out", str(out)]) == 0
    labels = json.loads((out / "statistics.json").read_text())["open_monitor"]["labels"]
    assert labels["duplicates"] == labels["conflicting"] == 1
    matrix = json.loads((out / "statistics.json").read_text())["binary_classification_metrics"]["confusion_matrix"]
    assert sum(matrix["0"].values()) == int((truth == 0).sum()) + (1 if truth[0] == 1 else -1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["missing.jsonl"], "CAPTURE missing.jsonl: no such file or folder"),
        ([str(CAPTURE), "--labels", "labels/"], "LABELS labels: no such file or folder"),
        (["tests/local/rehearse"], "CAPTURE tests/local/rehearse: a folder with no .jsonl file in it or below it"),
        ([str(CAPTURE), "--scores", str(TEST_CSV)], "the header is"),
    ],
)
def test_a_usage_error_is_one_message_and_writes_nothing(tmp_path, arguments, message):
    out = tmp_path / "nothing"
    result = subprocess.run(
        [sys.executable, "-m", "local.quality_report", *arguments, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not out.exists()


def test_the_make_target_runs_the_command():
    makefile = (ROOT / "Makefile").read_text()
    assert "quality-report:" in makefile and "-m local.quality_report" in makefile
    result = subprocess.run(["make", "--no-print-directory", "-n", "quality-report", "LABELS=a.jsonl b.jsonl", "OUT=x"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert '--out "x"' in result.stdout and "held-out.jsonl --labels a.jsonl b.jsonl" in result.stdout


def test_labels_of_the_rule_alone_say_the_audit_is_unrepresented_and_the_constraints_use_the_estimate(tmp_path, sample, capsys):
    ids, scores, truth = sample
    band = [i for i in range(len(ids)) if 0.1 < scores[i] < 0.9]  # the uncertain rows: accuracy well below the test set's
    labels = write_labels(tmp_path / "rule.jsonl", [ids[i] for i in band], truth[band], lambda i: {"inclusionProbability": 1.0, "selectedBy": "rule"})
    out = tmp_path / "rule-only"
    assert quality_report.main([str(CAPTURE), "--labels", str(labels), "--out", str(out)]) == 0
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["open_monitor"]["labels"]["unrepresented"] == ["audit"]
    assert statistics["open_monitor"]["basis_description"].endswith("(Horvitz-Thompson): the review rule's rows only")
    assert statistics["open_monitor"]["bases"]["weighted"]["description"] == statistics["open_monitor"]["basis_description"]
    # The band's own accuracy is far below the constraint, but it describes the band, not all predictions:
    # the check falls back on the estimate, which covers every prediction, and finds nothing.
    assert statistics["binary_classification_metrics"]["accuracy"]["value"] < 0.9
    assert json.loads((out / "constraint_violations.json").read_text()) == {"violations": []}
    printed = capsys.readouterr()
    assert "warning: no audit row is labelled yet: the weighted figures cover only the other rows" in printed.out
    assert "(Horvitz-Thompson): the review rule's rows only;" in printed.out and "(Horvitz-Thompson): all predictions" not in printed.out
    assert "no audit row is labelled yet" in (out / "report.html").read_text()


def test_labels_that_join_no_captured_row_are_called_out(tmp_path, sample, capsys):
    ids, _, truth = sample
    labels = write_labels(tmp_path / "other.jsonl", [f"other-{i}" for i in ids[:5]], truth[:5])
    assert quality_report.main([str(CAPTURE), "--labels", str(labels), "--out", str(tmp_path / "none")]) == 0
    err = capsys.readouterr().err
    assert "none of the 5 label(s) matches a captured row: are these labels for these capture files?" in err


def test_an_environment_whose_scores_are_in_s3_is_told_to_copy_them_down():
    """An environment naming its test-set scores in S3 (monitoring.model_quality.dataset_s3_uri) gets the command to fetch them."""
    uri = "s3://amzn-s3-demo-bucket/REPLACE-ME/income/test-scores-with-header.csv"
    environment = json.loads(json.dumps(CDK_CONTEXT["environments"]["income"]))
    environment["serving"], environment["batch"] = {"endpoint": True}, {"enabled": False}
    environment["monitoring"]["model_quality"] = {"dataset_s3_uri": uri}
    config = parse_environment("income", environment)
    with pytest.raises(UsageError, match=f"names its test-set scores {uri} in S3 .*aws s3 cp {uri} scores.csv"):
        quality_report.reference(None, config, 0.05)



def test_folders_stand_for_their_jsonl_files_as_aws_s3_cp_recursive_leaves_them(tmp_path, sample, capsys):
    """A prefix copied down keeps S3's yyyy/mm/dd/hh/ folders: a folder gives every .jsonl below it,
    in name order (so a later hour's label of a row wins, as in the deployed monitor)."""
    ids, scores, truth = sample
    captures, labels = tmp_path / "capture" / "AllTraffic" / "2026" / "11" / "22", tmp_path / "ground-truth" / "2026" / "11" / "22"
    (captures / "10").mkdir(parents=True)
    (captures / "10" / "part.jsonl").write_bytes(CAPTURE.read_bytes())
    everyone = lambda i: {"inclusionProbability": 1.0, "selectedBy": "all"}  # noqa: E731
    (labels / "15").mkdir(parents=True)
    (labels / "16").mkdir(parents=True)
    write_labels(labels / "16" / "b.jsonl", ids[:1], [1 - truth[0]], everyone)  # later hour: wins over 15's label of row 0
    write_labels(labels / "15" / "a.jsonl", ids, truth, everyone)
    (labels / "15" / "notes.txt").write_text("not a labels file")
    out = tmp_path / "out"
    assert quality_report.main([str(tmp_path / "capture"), "--labels", str(tmp_path / "ground-truth"), "--out", str(out)]) == 0
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["open_monitor"]["intake"]["files"] == 2 and statistics["open_monitor"]["labels"]["joined"] == len(ids)
    assert statistics["open_monitor"]["labels"]["conflicting"] == 1
    expected = truth.copy()
    expected[0] = 1 - truth[0]
    assert statistics["binary_classification_metrics"]["accuracy"]["value"] == pytest.approx(sk.accuracy_score(expected, scores >= 0.5), abs=1e-9)
    assert "1 labelled more than once (1 disagreeing: the later label counts)" in capsys.readouterr().out
    (captures / "11").mkdir()
    (captures / "11" / "part.jsonl").write_text("")  # a second hour's file of the same name
    assert quality_report.main([str(tmp_path / "capture"), "--out", str(out)]) == 0
    assert "the 2 capture file(s) given: 10/part.jsonl, 11/part.jsonl" in (out / "report.html").read_text()


def test_labels_for_no_captured_row_are_listed_with_their_file_and_line_and_a_later_run_clears_the_list(tmp_path, sample):
    ids, _, truth = sample
    labels = write_labels(tmp_path / "labels.jsonl", [*ids[:3], "nobody"], [*truth[:3], 1])
    out = tmp_path / "out"
    assert quality_report.main([str(CAPTURE), "--labels", str(labels), "--out", str(out)]) == 0
    assert json.loads((out / "statistics.json").read_text())["open_monitor"]["intake"]["unknown_file"] == "unknown_labels.jsonl"
    [unknown] = [json.loads(line) for line in (out / "unknown_labels.jsonl").read_text().splitlines()]
    assert unknown == {"source": str(labels), "line": 4, "eventId": "nobody", "rowIndex": 0, "label": 1,
                       "reason": "no captured prediction has this eventId and rowIndex in the periods the label could label"}  # fmt: skip
    assert quality_report.main([str(CAPTURE), "--out", str(out)]) == 0  # the same folder, no labels: nothing to list
    assert not (out / "unknown_labels.jsonl").exists()


def test_capture_files_with_no_readable_prediction_say_why(tmp_path, capsys):
    capture = tmp_path / "wrong.jsonl"
    capture.write_text('{"captureData": {}}\n{"truncated\n')
    assert quality_report.main([str(capture), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert "warning: no prediction could be read from the 1 capture file(s) (no eventMetadata.eventId: 1; not JSON (truncated or malformed): 1)" in printed.err
    assert "0 rows, 2 not read (no eventMetadata.eventId: 1; not JSON (truncated or malformed): 1)" in printed.out


def test_an_audit_row_also_uploaded_as_all_changes_no_weight(tmp_path):
    """The shipped labels, and the same answer for one of their audit rows uploaded again as 'all'
    (1.0): the row keeps its stratum, the audit's two rows still stand for the 98 rows the rule
    left, and the figures are those without the upload (it shrank the weighted rows to 66 of 114)."""
    shipped = SAMPLES_DIR / HELD_OUT_LABELS
    audit_line = next(json.loads(line) for line in shipped.read_text().splitlines() if '"audit"' in line)
    upload = tmp_path / "upload.jsonl"
    upload.write_text(json.dumps({**audit_line, "sampling": {"inclusionProbability": 1.0, "selectedBy": "all"}}) + "\n")
    figures = {}
    for name, labels in (("shipped", [shipped]), ("with-upload", [shipped, upload])):
        assert quality_report.main([str(CAPTURE), "--labels", *map(str, labels), "--out", str(tmp_path / name)]) == 0
        ours = json.loads((tmp_path / name / "statistics.json").read_text())["open_monitor"]
        assert ours["bases"]["weighted"]["weight"] == pytest.approx(114) and ours["labels"]["response"]["audit"]["stands_for"] == 98
        figures[name] = ours["bases"]["weighted"]["figures"]
    assert figures["with-upload"] == figures["shipped"]
