"""The ops preview tool on seed 003's capture lines and on a file with bad lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SEED_003_LINES = [
    '{"captureData":{"endpointInput":{"observedContentType":"application/jsonlines","mode":"INPUT","data":"{\\"features\\":[28,2,133937,9,13,2,0,0,4,1,15024,0,55,37]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/jsonlines","mode":"OUTPUT","data":"{\\"predicted_label\\":1,\\"score\\":0.989977359771728}\\n","encoding":"JSON"}},"eventMetadata":{"eventId":"40394cfe-37c3-4abb-b22c-dd7accbe9608","inferenceTime":"2023-01-19T05:31:46Z"},"eventVersion":"0"}',
    '{"captureData":{"endpointInput":{"observedContentType":"application/jsonlines","mode":"INPUT","data":"{\\"features\\":[28,2,133937,9,13,2,0,0,4,1,15024,0,55,37]}\\n{\\"features\\":[43,2,72338,12,14,2,12,0,1,1,0,0,40,37]}","encoding":"JSON"},"endpointOutput":{"observedContentType":"application/jsonlines","mode":"OUTPUT","data":"{\\"predicted_label\\":1,\\"score\\":0.989977359771728}\\n{\\"predicted_label\\":1,\\"score\\":0.504138827323913}\\n","encoding":"JSON"}},"eventMetadata":{"eventId":"32aaea1b-1a60-4870-b81d-40271f950c4a","inferenceTime":"2023-01-19T05:31:46Z"},"eventVersion":"0"}',
]


def run_cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "local.review_preview", str(path), *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_seed_003_lines_select_the_uncertain_row(tmp_path: Path) -> None:
    capture = tmp_path / "seed003.jsonl"
    capture.write_text("\n".join(SEED_003_LINES) + "\n")
    result = run_cli(capture, "--score-path", "score", "--lower", "0.1", "--upper", "0.9")
    assert result.returncode == 0, result.stderr
    selected = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["eventId"], s["rowIndex"], s["probability"], s["prediction"]) for s in selected] == [
        ("32aaea1b-1a60-4870-b81d-40271f950c4a", 1, 0.504138827323913, 1)
    ]
    assert selected[0]["features"] == [43, 2, 72338, 12, 14, 2, 12, 0, 1, 1, 0, 0, 40, 37]
    assert result.stderr.strip().splitlines()[-1] == "records read: 2, rows: 3, selected: 1, rejected: 0"


def test_bad_lines_are_reported_and_the_rest_still_selected(tmp_path: Path) -> None:
    capture = tmp_path / "mixed.jsonl"
    capture.write_bytes(("\n".join([SEED_003_LINES[1], "{truncated", ""]) + "\n").encode() + b"\xff\xfe\n")
    result = run_cli(capture, "--score-path", "score", "--rule", "outcome", "--outcome", "1")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    assert "line 2: rejected: not JSON" in result.stderr
    assert "line 4: rejected: not UTF-8" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("records read: 3, rows: 2, selected: 2, rejected: 2 (")
    assert "blank lines: 1" in result.stderr


def test_bad_thresholds_are_a_usage_error(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text(SEED_003_LINES[0])
    result = run_cli(capture, "--lower", "0.9", "--upper", "0.1")
    assert result.returncode == 2 and "0 <= lower < upper <= 1" in result.stderr


def test_make_review_preview_prints_what_the_module_prints(tmp_path: Path) -> None:
    """The ops command's name outlives the layout: `make review-preview` runs the same tool, with
    only the selected rows on stdout and the summary on stderr."""
    capture = tmp_path / "seed003.jsonl"
    capture.write_text("\n".join(SEED_003_LINES) + "\n")
    args = ("--score-path", "score", "--lower", "0.1", "--upper", "0.9")
    made = subprocess.run(
        ["make", "--no-print-directory", "-s", "review-preview", f"CAPTURE={capture}", f"ARGS={' '.join(args)}"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    direct = run_cli(capture, *args)
    assert made.returncode == 0, made.stderr
    assert made.stdout == direct.stdout and made.stdout.strip()
    assert direct.stderr.strip().splitlines()[-1] in made.stderr
    # make runs it under ENV (dev: 30 features), so seed 003's 14-feature rows are flagged as another model's.
    assert "warning: 1 selected row(s) do not have the 30 features of environment 'dev'" in made.stderr


def test_make_review_preview_without_a_file_previews_the_shipped_sample_under_devs_rule() -> None:
    made = subprocess.run(["make", "--no-print-directory", "-s", "review-preview"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    assert "rule: band (0.1 < p < 0.9), from environment 'dev'" in made.stderr
    selected = [json.loads(line) for line in made.stdout.splitlines()]
    assert selected and all(0.1 < row["probability"] < 0.9 for row in selected)
    assert {row["captureFile"] for row in selected} == {"samples/captures/held-out.jsonl"}
    assert made.stderr.strip().splitlines()[-1].startswith(f"records read: 114, rows: 114, selected: {len(selected)}")


def test_make_review_preview_of_a_missing_file_says_so() -> None:
    made = subprocess.run(
        ["make", "--no-print-directory", "-s", "review-preview", "CAPTURE=nope.jsonl"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert made.returncode != 0 and "CAPTURE nope.jsonl: no such file or folder" in made.stderr


def test_a_reader_that_stops_early_ends_the_preview_quietly(tmp_path: Path) -> None:
    """`make review-preview | head -3`: once the reader closes the pipe, the preview stops with no
    traceback and no make error. 4,000 selected rows are far more than a pipe holds, so the preview is
    still writing when the pipe closes."""
    capture = tmp_path / "many.jsonl"
    capture.write_text((SEED_003_LINES[1] + "\n") * 2000)
    args = ("--score-path", "score", "--rule", "outcome", "--outcome", "1")
    made = subprocess.Popen(
        ["make", "--no-print-directory", "review-preview", f"CAPTURE={capture}", f"ARGS={' '.join(args)}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert made.stdout is not None and made.stderr is not None
    assert json.loads(made.stdout.readline())["rowIndex"] == 0
    made.stdout.close()
    assert made.wait(timeout=120) == 0
    stderr = made.stderr.read()
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_a_missing_capture_file_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "nope.jsonl")
    assert result.returncode == 2 and "no such file or folder" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_stands_for_every_capture_file_below_it(tmp_path: Path) -> None:
    """`CAPTURE=<folder>` as `aws s3 cp --recursive` leaves a capture prefix (yyyy/mm/dd/hh/): every
    .jsonl file below it, in name order; it used to say the folder was no such capture file."""
    hour = tmp_path / "capture" / "2023" / "01" / "19" / "05"
    hour.mkdir(parents=True)
    (hour / "a.jsonl").write_text(SEED_003_LINES[1] + "\n")
    (hour / "b.jsonl").write_text("{truncated\n" + SEED_003_LINES[1] + "\n")
    (hour / "notes.txt").write_text("not a capture file")
    result = run_cli(tmp_path / "capture", "--score-path", "score")
    assert result.returncode == 0, result.stderr
    selected = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(Path(s["captureFile"]).name, s["line"], s["rowIndex"]) for s in selected] == [("a.jsonl", 1, 1), ("b.jsonl", 2, 1)]
    assert f"{hour / 'b.jsonl'} line 1: rejected: not JSON" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("records read: 3, rows: 4, selected: 2, rejected: 1 (")
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = run_cli(empty)
    assert nothing.returncode == 2 and "a folder with no .jsonl file in it or below it" in nothing.stderr


def test_the_environments_rule_is_the_default_and_a_flag_overrides_it(tmp_path: Path) -> None:
    capture = tmp_path / "seed003.jsonl"
    capture.write_text("\n".join(SEED_003_LINES) + "\n")
    # income (seed 002) reviews the negative outcomes; both rows here are predicted 1, so none is picked.
    income = run_cli(capture, "--env", "income", "--score-path", "score")
    assert income.returncode == 0, income.stderr
    assert "rule: outcome (predicted label 0), from environment 'income'" in income.stderr
    assert income.stdout == ""
    overridden = run_cli(capture, "--env", "income", "--score-path", "score", "--rule", "band")
    assert [json.loads(line)["rowIndex"] for line in overridden.stdout.splitlines()] == [1]
    assert "warning" not in overridden.stderr  # seed 003's rows have income's 14 features
    unknown = run_cli(capture, "--env", "nope")
    assert unknown.returncode == 2 and "env: 'nope' is not an environment in cdk.json" in unknown.stderr
