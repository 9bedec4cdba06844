"""The assembling step on moto S3: human labels win, duplicates and conflicts, malformed rows parked;
the evaluation rows: the test set, and held-out labels that never train, weighted by their sampling."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import boto3
import pytest

from lambdas.retraining import dataset
from tests.lambdas.aws_env import REGION

FEATURES = 3


def settings(labels: str | None = "labels", percentage: int = 30, holdout: int = 0, test: str | None = None) -> dataset.DatasetSettings:
    """``holdout`` 0 (no label held out) for the tests of the training set itself."""
    return dataset.DatasetSettings(
        training_data_s3_uri="s3://datasets/original/train.csv",
        labels_bucket=labels,
        output_s3_uri="s3://datasets/retraining/run-1/",
        feature_count=FEATURES,
        label_count=2,
        validation_percentage=percentage,
        holdout_percentage=holdout,
        test_data_s3_uri=test,
    )


def rows(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text)) if r]


@pytest.fixture
def s3(mocked_aws):
    client = boto3.client("s3", region_name=REGION)
    for bucket in ("datasets", "labels"):
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    original = "\n".join(f"{i % 2},{i},{i * 2}.5,{i * 3}" for i in range(200)) + "\n"
    client.put_object(Bucket="datasets", Key="original/train.csv", Body=original.encode())
    return client


def read(s3, key: str) -> str:
    return s3.get_object(Bucket="datasets", Key=key)["Body"].read().decode()


def output(s3) -> tuple[list[list[str]], list[list[str]], list[dict], dict]:
    train = rows(read(s3, "retraining/run-1/train/train.csv"))
    validation = rows(read(s3, "retraining/run-1/validation/validation.csv"))
    rejected = [json.loads(line) for line in read(s3, "retraining/run-1/rejected.jsonl").splitlines()]
    manifest = json.loads(read(s3, "retraining/run-1/manifest.json"))
    return train, validation, rejected, manifest


def test_original_data_only_is_split_by_record_identity(s3) -> None:
    result = dataset.assemble(s3, settings(labels=None))
    train, validation, rejected, manifest = output(s3)
    assert len(train) + len(validation) == 200 and not rejected
    assert 40 <= len(validation) <= 80  # about 30 % of 200, chosen by hash
    for row in validation:
        _, _, identity = dataset.parse_row(row, settings())
        assert dataset.in_validation(identity, 30)
    assert result["counts"] == manifest["counts"] and result["labelsThrough"] is None
    assert result["trainS3Uri"] == "s3://datasets/retraining/run-1/train/"


def test_the_human_label_replaces_the_original_row_and_the_newest_label_wins(s3) -> None:
    # Record 4 is "0,4,8.5,12" in the original data; reviewers relabel it (written as 4.0, the same record).
    s3.put_object(Bucket="labels", Key="training-rows/loop-a.csv", Body=b"0,4.0,8.5,12\n1,900,1,1\n")
    s3.put_object(Bucket="labels", Key="training-rows/loop-b.csv", Body=b"1,4,8.50,12.0\n1,900,1,1\n")  # later: conflict on 4, repeat of 900
    result = dataset.assemble(s3, settings())
    train, validation, rejected, manifest = output(s3)
    everything = train + validation
    assert len(everything) == 201  # 200 originals (one relabelled) + one new record
    relabelled = [r for r in everything if r[1:] in (["4", "8.50", "12.0"], ["4", "8.5", "12"])]
    assert relabelled == [["1", "4", "8.50", "12.0"]]
    assert [r for r in everything if r[1] == "900"] == [["1", "900", "1", "1"]]
    counts = manifest["counts"]
    assert counts["originalRowsReplacedByLabels"] == 1 and counts["labelRows"] == 4 and counts["labelledRecords"] == 2
    assert counts["duplicateLabels"] == 2 and counts["conflictingLabels"] == 1 and not rejected
    [conflict] = manifest["conflicts"]
    assert conflict["kept"]["label"] == "1" and conflict["replaced"]["label"] == "0" and conflict["kept"]["source"].endswith("loop-b.csv:1")
    assert result["labelsThrough"] == manifest["labelObjects"][-1]["lastModified"]


def test_malformed_rows_are_reported_with_their_reason_and_the_good_rows_kept(s3) -> None:
    s3.put_object(Bucket="labels", Key="training-rows/loop-c.csv", Body=b"1,901,1,1\n2,902,1,1\n1,903,1\nx,904,1,1\n0,905,abc,1\n1,906,nan,1\n0.5,907,1,1\n1,908,1,1\n")
    dataset.assemble(s3, settings())
    train, validation, rejected, manifest = output(s3)
    kept = sorted(r[1] for r in train + validation if r[1] in {str(n) for n in range(901, 909)})
    assert kept == ["901", "908"]
    reasons = {r["row"][1]: r["reason"] for r in rejected}
    assert set(reasons) == {"902", "903", "904", "905", "906", "907"}
    assert "not one of 0-1" in reasons["902"] and "3 fields, expected 4" in reasons["903"]
    assert "not a number" in reasons["904"] and "feature not a number" in reasons["905"] and "'nan' is not a decimal number" in reasons["906"]
    assert all(r["source"] == "s3://labels/training-rows/loop-c.csv" and r["line"] >= 2 for r in rejected)
    assert manifest["counts"]["rejectedRows"] == 6


def test_a_record_stays_on_the_same_side_of_the_split_in_every_run(s3) -> None:
    dataset.assemble(s3, settings(labels=None))
    first = output(s3)[1]
    s3.put_object(Bucket="labels", Key="training-rows/loop-d.csv", Body=b"1,950,2,2\n")
    dataset.assemble(s3, settings())
    assert all(row in output(s3)[1] for row in first)


def test_a_set_with_no_validation_rows_fails_clearly(s3) -> None:
    s3.put_object(Bucket="datasets", Key="original/train.csv", Body=b"1,1,1,1\n")
    with pytest.raises(dataset.DatasetError, match="both must have rows"):
        dataset.assemble(s3, settings(labels=None))


def test_missing_training_data_fails_clearly(s3) -> None:
    s3.delete_object(Bucket="datasets", Key="original/train.csv")
    with pytest.raises(dataset.DatasetError, match="no training data"):
        dataset.assemble(s3, settings(labels=None))


def test_labels_through_is_the_newest_label_object(s3) -> None:
    s3.put_object(Bucket="labels", Key="training-rows/z.csv", Body=b"1,960,1,1\n")
    result = dataset.assemble(s3, settings())
    newest = s3.head_object(Bucket="labels", Key="training-rows/z.csv")["LastModified"]
    assert dt.datetime.fromisoformat(result["labelsThrough"]) == newest


@pytest.mark.parametrize("value", ["1_000", "0x10", "1e400", "inf", "nan", "1,5", "", "1.2.3", "\u0661"])
def test_features_a_csv_reader_would_not_take_as_numbers_are_rejected(value: str) -> None:
    # Python's float() takes "1_000" and Arabic-Indic digits; XGBoost's CSV reader does not.
    with pytest.raises(ValueError):
        dataset.normalised_number(value)


@pytest.mark.parametrize(("value", "normalised"), [("1", "1.0"), ("-2.5", "-2.5"), (".5", "0.5"), ("3.", "3.0"), ("1e-3", "0.001"), ("+7E2", "700.0")])
def test_decimal_features_are_kept(value: str, normalised: str) -> None:
    assert dataset.normalised_number(value) == normalised


# --- the evaluation rows ----------------------------------------------------------------------------

TEST_SET = "s3://datasets/original/test.csv"


def evaluation(s3) -> list[list[str]]:
    return rows(read(s3, "retraining/run-1/evaluation/evaluation.csv"))


def labelled(count: int, start: int = 1_000) -> bytes:
    """``count`` labelled records no original row has (features start, 1, 1 upwards)."""
    return "".join(f"{i % 2},{i},1,1\n" for i in range(start, start + count)).encode()


def ground_truth(labels: bytes, *sampling: dict | None) -> bytes:
    """review_results' lines for ``labels`` (same order), each with the given sampling (cycled)."""
    lines = []
    for index, row in enumerate(labels.decode().splitlines()):
        line = {"groundTruthData": {"data": row.split(",")[0], "encoding": "CSV"}, "eventMetadata": {"eventId": f"r{index}"}, "eventVersion": "0"}
        chosen = sampling[index % len(sampling)]
        if chosen is not None:
            line["sampling"] = chosen
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def test_held_out_labels_judge_and_never_train_or_validate(s3) -> None:
    s3.put_object(Bucket="labels", Key="training-rows/loop-a.csv", Body=labelled(300))
    result = dataset.assemble(s3, settings(holdout=20, test=None))
    train, validation, _, manifest = output(s3)
    judged = [r for r in evaluation(s3) if r[2].startswith("reviewed-")]
    held_out = {r[4] for r in judged}  # the first feature: the record number
    trained = {r[1] for r in train + validation}
    assert 40 <= len(held_out) <= 80  # about 20 % of 300, chosen by hash
    assert not held_out & trained  # a held-out label never trains or validates
    assert {str(i) for i in range(1_000, 1_300)} == held_out | (trained & {str(i) for i in range(1_000, 1_300)})
    for row in judged:
        assert dataset.in_holdout(dataset.parse_row(row[3:], settings())[2], 20)
    counts = manifest["counts"]
    assert counts["heldOutLabels"] == len(held_out) and counts["labelRows"] == 300
    assert result["evaluationS3Uri"] == "s3://datasets/retraining/run-1/evaluation/"


def test_the_holdout_is_stable_across_runs_and_new_labels_do_not_move_it(s3) -> None:
    s3.put_object(Bucket="labels", Key="training-rows/loop-a.csv", Body=labelled(200))
    dataset.assemble(s3, settings(holdout=20))
    first = {r[4] for r in evaluation(s3) if r[2].startswith("reviewed-")}
    s3.put_object(Bucket="labels", Key="training-rows/loop-b.csv", Body=labelled(200, start=5_000))
    dataset.assemble(s3, settings(holdout=20))
    second = {r[4] for r in evaluation(s3) if r[2].startswith("reviewed-")}
    assert first and first == {n for n in second if int(n) < 5_000}


def test_the_holdout_is_independent_of_the_validation_split() -> None:
    identities = [dataset.parse_row(["0", str(i), "2", "3"], settings())[2] for i in range(20_000)]
    validation = [i for i in identities if dataset.in_validation(i, 20)]
    rest = [i for i in identities if not dataset.in_validation(i, 20)]
    # About 20 % held out on either side of the validation split (binomial sd 0.6 and 0.3 points).
    for side in (validation, rest):
        share = sum(dataset.in_holdout(i, 20) for i in side) / len(side)
        assert 0.18 <= share <= 0.22, share


def test_held_out_labels_are_weighted_by_their_ground_truth_sampling(s3) -> None:
    audit, rule = {"inclusionProbability": 0.02, "selectedBy": "audit"}, {"inclusionProbability": 0.5, "selectedBy": "rule"}
    weighted = labelled(200)
    s3.put_object(Bucket="labels", Key="training-rows/loop-a.csv", Body=weighted)
    s3.put_object(Bucket="labels", Key="ground-truth/2026/11/22/10/loop-a.jsonl", Body=ground_truth(weighted, audit, rule, None))
    unweighted = labelled(100, start=3_000)
    s3.put_object(Bucket="labels", Key="training-rows/loop-b.csv", Body=unweighted)  # no ground-truth file
    misaligned = labelled(100, start=4_000)
    s3.put_object(Bucket="labels", Key="training-rows/loop-c.csv", Body=misaligned)
    s3.put_object(Bucket="labels", Key="ground-truth/2026/11/22/11/loop-c.jsonl", Body=ground_truth(labelled(100, start=4_001), audit))  # labels shifted by one
    dataset.assemble(s3, settings(holdout=20))
    judged = {int(r[4]): (float(r[1]), r[2]) for r in evaluation(s3) if r[2].startswith("reviewed-")}
    for number, (weight, source) in judged.items():
        if number < 3_000:
            expected = [(50.0, "reviewed-audit"), (2.0, "reviewed-rule"), (1.0, "reviewed-unweighted")][(number - 1_000) % 3]
            assert (weight, source) == expected, number
        else:
            assert (weight, source) == (1.0, "reviewed-unweighted"), number
    assert {source for _, source in judged.values()} == {"reviewed-audit", "reviewed-rule", "reviewed-unweighted"}
    manifest = output(s3)[3]
    reasons = {o["key"]: o["reason"] for o in manifest["unweightedLabelObjects"]}
    assert reasons == {
        "training-rows/loop-b.csv": "no ground-truth file ground-truth/<hour>/loop-b.jsonl",
        "training-rows/loop-c.csv": "1 ground-truth files named loop-c.jsonl, 0 of them with a line of the same label for each row",
    }
    assert sum(manifest["evaluationSources"].values()) == manifest["counts"]["evaluationRows"] == len(judged) + manifest["evaluationSources"].get("validation-split", 0)


def test_the_test_set_judges_with_weight_one_and_its_records_never_train(s3) -> None:
    # Original record 5 ("1,5,10.5,15") is also a test row; a reviewer labelled test record 901.
    s3.put_object(Bucket="datasets", Key="original/test.csv", Body=b"1,5,10.5,15\n0,901,1,1\n1,902,1,1\nbad,1,1,1\n")
    s3.put_object(Bucket="labels", Key="training-rows/loop-a.csv", Body=b"1,901,1,1\n")
    dataset.assemble(s3, settings(holdout=20, test=TEST_SET))
    train, validation, rejected, manifest = output(s3)
    tested = [r for r in evaluation(s3) if r[2] == "test"]
    assert [(r[1], r[3:]) for r in tested] == [("1.0", ["1", "5", "10.5", "15"]), ("1.0", ["0", "901", "1", "1"]), ("1.0", ["1", "902", "1", "1"])]
    assert [r[0] for r in evaluation(s3)] == [str(i) for i in range(len(evaluation(s3)))]  # row numbers
    trained = {r[1] for r in train + validation}
    assert not {"5", "901", "902"} & trained and len(train) + len(validation) == 199
    assert manifest["counts"]["excludedAsTestRecords"] == 2 and manifest["counts"]["testRows"] == 3
    assert manifest["evaluationSources"] == {"test": 3}  # with a test set the validation split does not judge
    assert [r["reason"] for r in rejected] == ["label 'bad' is not a number"] and rejected[0]["source"] == TEST_SET


def test_without_a_test_set_the_validation_split_of_the_original_data_judges(s3) -> None:
    dataset.assemble(s3, settings(labels=None, test=None))
    _, validation, _, manifest = output(s3)
    judged = evaluation(s3)
    assert [r[3:] for r in judged] == validation and {(r[1], r[2]) for r in judged} == {("1.0", "validation-split")}
    assert manifest["counts"]["evaluationRows"] == len(validation) and manifest["testDataS3Uri"] is None


def test_an_empty_evaluation_set_fails_clearly(s3) -> None:
    s3.put_object(Bucket="datasets", Key="original/test.csv", Body=b"")
    with pytest.raises(dataset.DatasetError, match="the evaluation set has no rows"):
        dataset.assemble(s3, settings(labels=None, test=TEST_SET))
    s3.delete_object(Bucket="datasets", Key="original/test.csv")
    with pytest.raises(dataset.DatasetError, match="no test set at s3://datasets/original/test.csv"):
        dataset.assemble(s3, settings(labels=None, test=TEST_SET))


def test_the_weights_come_from_what_review_results_writes(s3) -> None:
    """The contract with lambdas/review/results/results.py: its training rows and ground-truth lines
    of one loop line up, so each held-out label gets its own row's inclusion probability."""
    from lambdas.review.results import results

    rows = [
        {"key": f"row-{i}", "recordId": f"r{i}", "features": [{"name": n, "value": v} for n, v in zip("abc", (7_000 + i, 1, 1), strict=True)],
         "prediction": i % 2, "selectedBy": "audit" if i % 2 else "rule", "inclusionProbability": 0.01 if i % 2 else 0.25}
        for i in range(6)
    ]  # fmt: skip
    answers = {f"row-{i}-verdict": {"agree": True, "disagree": False} for i in range(6) if i != 2}  # row 2 unanswered: no label
    answered = {"humanLoopName": "loop-x", "inputContent": {"rows": rows}, "humanAnswers": [{"answerContent": answers, "submissionTime": "2026-11-22T10:00:00Z"}]}
    s3.create_bucket(Bucket="reports", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="reports", Key="a2i/loop-x/output.json", Body=json.dumps(answered).encode())
    event = results.LoopEvent("loop-x", "Completed", "s3://reports/a2i/loop-x/output.json", None, "2026-11-22T10:00:00Z")
    written = results.record_loop(s3, boto3.client("events", region_name=REGION), event, results.ResultsSettings("labels", "reports", ("0", "1"), "default", "mlloop.review"))
    assert written.labelled == 5
    dataset.assemble(s3, settings(holdout=100))  # every label held out: each judges with its weight
    judged = {r[4]: (float(r[1]), r[2]) for r in evaluation(s3) if r[2].startswith("reviewed-")}
    assert judged == {
        "7000": (4.0, "reviewed-rule"), "7001": (100.0, "reviewed-audit"), "7003": (100.0, "reviewed-audit"),
        "7004": (4.0, "reviewed-rule"), "7005": (100.0, "reviewed-audit"),
    }  # fmt: skip
    assert output(s3)[3]["unweightedLabelObjects"] == []
