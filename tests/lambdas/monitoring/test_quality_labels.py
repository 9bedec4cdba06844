"""Ground-truth lines: what is read, what is set aside and why, and the rule for two labels of one row."""

from __future__ import annotations

import json

import pytest

from lambdas.monitoring.quality import labels as ground_truth


def line(data="1", event="evt-1", encoding="CSV", **extra) -> bytes:
    record = {"groundTruthData": {"data": data, "encoding": encoding}, "eventMetadata": {"eventId": event}, "eventVersion": "0"}
    for key, value in extra.items():
        if key == "row_index":
            record["eventMetadata"]["rowIndex"] = value
        else:
            record[key] = value
    return json.dumps(record).encode()


def test_a_label_line_is_read_with_its_row_index_and_sampling():
    label = ground_truth.parse_line(line("0", row_index=2, sampling={"inclusionProbability": 0.0068, "selectedBy": "audit"}), "f", 3, "t")
    assert (label.key, label.value, label.inclusion_probability, label.selected_by) == (("evt-1", 2), 0, 0.0068, "audit")
    assert ground_truth.parse_line(line("1.0"), "f", 1, "t").key == ("evt-1", 0)  # no rowIndex: 0; "1.0" is 1
    assert ground_truth.parse_line(line("MQ==", encoding="BASE64"), "f", 1, "t").value == 1
    assert ground_truth.parse_line(line(1, encoding="JSON"), "f", 1, "t").value == 1
    assert ground_truth.parse_line(line(), "f", 1, "t").inclusion_probability is None  # an upload: unweighted figures only


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"groundTruthData": ', "not JSON (a ground-truth line is one JSON object, Model Monitor's record): unexpected end of data at character 21"),
        (b"junk", "not JSON (a ground-truth line is one JSON object, Model Monitor's record): unexpected character, expected a JSON value at character 1"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "not a ground-truth record: a JSON list"),
        (json.dumps({"groundTruthData": {"data": "1"}}).encode(), "no eventMetadata.eventId"),
        (line(event=""), "no eventMetadata.eventId"),
        (line(row_index=-1), "eventMetadata.rowIndex -1 is not a whole number >= 0"),
        (line(row_index="2"), "eventMetadata.rowIndex \"2\" is not a whole number >= 0"),
        (json.dumps({"eventMetadata": {"eventId": "e"}}).encode(), "no groundTruthData.data"),
        (line("2"), "label \"2\" is not 0 or 1"),
        (line("benign"), "label \"benign\" is not 0 or 1"),
        (line(True, encoding="JSON"), "groundTruthData.data is a JSON bool, not a label"),
        (line("1", encoding="XML"), "groundTruthData.encoding \"XML\" is not CSV, JSON or BASE64"),
        (line("%%", encoding="BASE64"), "groundTruthData.data is not valid BASE64"),
        (line(sampling=[0.5]), "sampling is not an object"),
        (line(sampling={"inclusionProbability": 0, "selectedBy": "audit"}), "sampling.inclusionProbability 0 is not a number in (0, 1]"),
        (line(sampling={"inclusionProbability": 1.5, "selectedBy": "rule"}), "sampling.inclusionProbability 1.5 is not a number in (0, 1]"),
        (line(sampling={"inclusionProbability": "0.5", "selectedBy": "rule"}), "sampling.inclusionProbability \"0.5\" is not a number"),
        (line(sampling={"inclusionProbability": 0.5, "selectedBy": "random"}), "sampling.selectedBy \"random\" is not one of rule, audit, all"),
    ],
)
def test_a_malformed_line_is_set_aside_with_its_reason_and_the_lines_beside_it_are_read(raw, reason):
    body = b"\n".join([line("1", "before"), raw, b"", line("0", "after")]) + b"\n"
    found, rejected = ground_truth.read_file(body, "ground-truth/2026/11/22/10/x.jsonl", "2026-11-22T10:05:00Z")
    assert [label.record_id for label in found] == ["before", "after"]
    [parked] = rejected
    assert parked.line == 2 and parked.source == "ground-truth/2026/11/22/10/x.jsonl"
    assert parked.reason.startswith(reason)
    assert ground_truth.reasons(rejected) == {parked.reason.split(":")[0]: 1}


def test_the_latest_label_of_a_row_wins_and_keeps_the_probability_it_was_reviewed_with():
    reviewed = ground_truth.parse_line(line("1", sampling={"inclusionProbability": 0.02, "selectedBy": "audit"}), "a", 1, "2026-11-22T10:00:00Z")
    uploaded = ground_truth.parse_line(line("0"), "b", 1, "2026-11-22T11:00:00Z")  # later, from a business system
    again = ground_truth.parse_line(line("1", event="evt-2"), "c", 1, "2026-11-22T09:00:00Z")
    same = ground_truth.parse_line(line("1", event="evt-2"), "c", 2, "2026-11-22T09:00:00Z")
    latest = ground_truth.latest([uploaded, reviewed, again, same])
    winner = latest.labels[("evt-1", 0)]
    assert winner.value == 0 and winner.source == "b"
    assert (winner.inclusion_probability, winner.selected_by) == (0.02, "audit")
    assert latest.labels[("evt-2", 0)].line == 2  # same object: the later line
    assert latest.duplicated == {("evt-1", 0), ("evt-2", 0)} and latest.conflicting == {("evt-1", 0)}


def test_a_row_labelled_several_ways_keeps_the_largest_inclusion_probability_among_its_labels():
    """An upload of every row ('all', 1.0) then a reviewer's audit answer (0.02): the audit label is
    the later and its value counts, but the row was labelled for certain, so it counts once, not 50
    times; a reviewer's answer uploaded again with its own sampling keeps that sampling."""
    everyone = ground_truth.parse_line(line("0", sampling={"inclusionProbability": 1.0, "selectedBy": "all"}), "upload", 1, "2026-11-22T09:00:00Z")
    audit = ground_truth.parse_line(line("1", sampling={"inclusionProbability": 0.02, "selectedBy": "audit"}), "review", 1, "2026-11-22T10:00:00Z")
    first = ground_truth.parse_line(line("1", event="evt-2", sampling={"inclusionProbability": 0.02, "selectedBy": "audit"}), "review", 2, "2026-11-22T10:00:00Z")
    copied = ground_truth.parse_line(line("1", event="evt-2", sampling={"inclusionProbability": 0.02, "selectedBy": "audit"}), "copy", 1, "2026-11-22T12:00:00Z")
    latest = ground_truth.latest([audit, everyone, copied, first])
    winner = latest.labels[("evt-1", 0)]
    assert (winner.value, winner.source, winner.inclusion_probability, winner.selected_by) == (1, "review", 1.0, "all")
    assert (latest.labels[("evt-2", 0)].source, latest.labels[("evt-2", 0)].inclusion_probability) == ("copy", 0.02)


def test_labels_are_counted_by_how_their_rows_were_chosen():
    found = [
        ground_truth.parse_line(line(event=f"e{i}", sampling={"inclusionProbability": 1.0, "selectedBy": by}), "f", i, "t")
        for i, by in enumerate(["rule", "rule", "audit", "all"])
    ] + [ground_truth.parse_line(line(event="upload"), "f", 9, "t")]
    assert ground_truth.by_selection(ground_truth.latest(found).labels) == {"rule": 2, "audit": 1, "all": 1, "unknown": 1}
