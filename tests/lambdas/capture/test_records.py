"""The capture-line parser: every odd input has an expected outcome, and it never raises."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdas.capture.records import ParseOptions, parse_line
from lambdas.capture.selection import Audit, SelectionRule, selected_by

CSV = ParseOptions()
JSONL = ParseOptions(score_path="score")


def capture_line(
    input_data: str,
    output_data: str | None,
    *,
    content_type: str = "text/csv",
    encoding: str = "CSV",
    event_id: str = "evt-1",
    inference_id: str | None = None,
) -> str:
    metadata = {"eventId": event_id, "inferenceTime": "2026-11-22T10:00:00Z"}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    capture = {"endpointInput": {"observedContentType": content_type, "mode": "INPUT", "data": input_data, "encoding": encoding}}
    if output_data is not None:
        capture["endpointOutput"] = {"observedContentType": content_type, "mode": "OUTPUT", "data": output_data, "encoding": encoding}
    return json.dumps({"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"})


def test_csv_single_record() -> None:
    result = parse_line(capture_line("1.5,2.5,3.0", "0.42"), 1, CSV)
    assert result.rejected == []
    [row] = result.rows
    assert (row.features, row.probability, row.prediction, row.row_index) == (["1.5", "2.5", "3.0"], 0.42, 0, 0)
    assert row.record_id == "evt-1"  # no inferenceId: falls back to eventId


def test_inference_id_is_the_record_identity_when_present() -> None:
    [row] = parse_line(capture_line("1,2", "0.7", inference_id="order-17"), 1, CSV).rows
    assert (row.record_id, row.event_id, row.prediction) == ("order-17", "evt-1", 1)


def test_multi_record_request_pairs_rows_by_position() -> None:
    result = parse_line(capture_line("1,2\n3,4\n5,6", "0.1\n0.5\n0.9\n"), 1, CSV)
    assert [(r.row_index, r.features, r.probability) for r in result.rows] == [
        (0, ["1", "2"], 0.1),
        (1, ["3", "4"], 0.5),
        (2, ["5", "6"], 0.9),
    ]


def test_csv_output_on_one_line_is_split_per_row() -> None:
    result = parse_line(capture_line("1,2\n3,4", "0.25,0.75"), 1, CSV)
    assert [r.probability for r in result.rows] == [0.25, 0.75]


def test_seed_003_json_lines_with_score_path() -> None:
    line = capture_line(
        '{"features":[28,2,133937]}\n{"features":[43,2,72338]}',
        '{"predicted_label":1,"score":0.989977359771728}\n{"predicted_label":1,"score":0.504138827323913}\n',
        content_type="application/jsonlines",
        encoding="JSON",
    )
    result = parse_line(line, 1, JSONL)
    assert [(r.features, r.probability) for r in result.rows] == [([28, 2, 133937], 0.989977359771728), ([43, 2, 72338], 0.504138827323913)]


def test_content_type_with_charset_is_read_by_media_type() -> None:
    result = parse_line(capture_line("1,2", "0.3", content_type="Text/CSV; charset=utf-8"), 1, CSV)
    assert [r.probability for r in result.rows] == [0.3]


def test_base64_payloads_are_decoded() -> None:
    encoded = capture_line(
        base64.b64encode(b"1,2\n3,4").decode(), base64.b64encode(b"0.2\n0.6").decode(), content_type="application/x-custom+csv", encoding="BASE64"
    )
    # Base64 text decodes, but the media type is neither CSV nor JSON: parked with that reason.
    [rejected] = parse_line(encoded, 3, CSV).rejected
    assert "content type 'application/x-custom+csv' is not CSV or JSON" in rejected.reason
    ok = capture_line(base64.b64encode(b"1,2").decode(), base64.b64encode(b"0.2").decode(), encoding="BASE64")
    assert [r.probability for r in parse_line(ok, 1, CSV).rows] == [0.2]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"captureData": {"endpointInput": {"data": "1,2"', "not JSON (truncated or malformed)"),
        (b"this is not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[1, 2, 3]", "not a capture record: a JSON list"),
        (capture_line("1,2", None).encode(), "no captureData.endpointOutput (input-only capture)"),
        (capture_line("!!!not-base64", "MC41", encoding="BASE64").encode(), "endpointInput is not valid base64"),  # output: "0.5"
        (capture_line("MSwy", "!!!", encoding="BASE64").encode(), "endpointOutput is not valid base64"),
        (capture_line("1,2\n3,4", "0.5"), "2 input rows but 1 output rows"),
        (json.dumps({"captureData": {}, "eventMetadata": {}}), "no eventMetadata.eventId"),
        (capture_line("1,2", "0.5", encoding="GZIP"), "has unknown encoding 'GZIP'"),
        (capture_line("", ""), "response has no predictions"),
        (capture_line("", "0.5"), "0 input rows but 1 output rows"),
    ],
)
def test_bad_lines_are_rejected_with_their_reason(line, reason: str) -> None:
    result = parse_line(line, 7, CSV)
    assert result.rows == []
    [rejected] = result.rejected
    assert rejected.line_number == 7 and reason in rejected.reason


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ('{"score": "0.7"}', None),  # a numeric string is a probability
        ('{"score": "NaN"}', "probability is not finite"),
        ('{"score": 1.7}', "outside [0, 1]"),
        ('{"score": -0.1}', "outside [0, 1]"),
        ('{"score": "high"}', "probability is not a number"),
        ('{"label": 1}', "no probability in output"),
        ('{"score": true}', "no probability in output"),
    ],
)
def test_probability_values(output: str, reason: str | None) -> None:
    line = capture_line('{"features":[1,2]}', output, content_type="application/jsonlines", encoding="JSON")
    result = parse_line(line, 1, JSONL)
    if reason is None:
        assert [r.probability for r in result.rows] == [0.7]
    else:
        [rejected] = result.rejected
        assert reason in rejected.reason and rejected.row_index == 0 and rejected.event_id == "evt-1"


def test_one_bad_row_does_not_stop_the_good_rows_beside_it() -> None:
    result = parse_line(capture_line("1,2\n3,4\n5,6", "0.5\nNaN\n0.2"), 1, CSV)
    assert [r.row_index for r in result.rows] == [0, 2]
    assert [(r.row_index, "not finite" in r.reason) for r in result.rejected] == [(1, True)]


def test_blank_line_is_counted_not_rejected() -> None:
    result = parse_line(b"   \n", 4, CSV)
    assert result.blank and result.rows == [] and result.rejected == []


def test_band_and_outcome_rules() -> None:
    rows = parse_line(capture_line("1\n2\n3\n4", "0.05\n0.1\n0.5\n0.95"), 1, CSV).rows
    band = SelectionRule(rule="band", lower=0.1, upper=0.9)
    assert [r.probability for r in rows if band.selects_prediction(r.probability, r.prediction)] == [0.5]  # strict: 0.1 itself is confident
    negative = SelectionRule(rule="outcome", outcome=0)
    assert [r.probability for r in rows if negative.selects_prediction(r.probability, r.prediction)] == [0.05, 0.1]
    with pytest.raises(ValueError, match="allowed values: band, outcome"):
        SelectionRule(rule="random")
    with pytest.raises(ValueError, match="0 <= lower < upper <= 1"):
        SelectionRule(lower=0.9, upper=0.1)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), st.builds(json.dumps, st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["captureData", "endpointInput", "endpointOutput", "data", "encoding", "observedContentType", "eventMetadata", "eventId", "x"]),
        children,
        max_size=5,
    ),
    max_leaves=20,
))))
def test_parser_never_raises_and_never_drops_a_line_silently(line) -> None:
    for options in (JSONL, ParseOptions(score_path="score", keep=SelectionRule().selects_prediction), ParseOptions(keep=lambda p, c: False)):
        result = parse_line(line, 1, options)
        assert result.blank or result.rows or result.rejected or result.skipped
        assert all(rejected.reason for rejected in result.rejected)


def _bench_lines() -> list[str]:
    import random

    from tests.bench.capture_filter import FORMATS
    from tests.bench.capture_filter import capture_line as bench_line

    rng = random.Random(3)
    return [bench_line(kind, rng, i) for kind in FORMATS for i in range(300)]


ODD_OUTPUTS = [" 0.5 ", "0.95", "nan", "inf", "1.5", "-0", "1", "0", "0.5,0.6", "abc", ""]


@pytest.mark.parametrize("audit", [None, Audit(30.0)], ids=["rule", "rule+audit"])
@pytest.mark.parametrize("rule", [SelectionRule(), SelectionRule(rule="outcome", outcome=1), SelectionRule(lower=0.3, upper=0.35)])
def test_skipping_unselected_rows_selects_exactly_what_the_full_parse_selects(rule: SelectionRule, audit: Audit | None) -> None:
    """With an audit sample the fast path asks the draw of each row the rule leaves, by the same
    record ID (inference ID, else event ID) and row index as the full parse's rows have."""
    lines = _bench_lines() + [capture_line("1,2", out) for out in ODD_OUTPUTS]
    lines += [capture_line(json.dumps({"features": [1, 2]}), json.dumps({"score": s}), content_type="application/jsonlines") for s in (0.5, 0.05, "0.5", True, None, [0.5])]
    lines += [capture_line("1,2", "0.99", event_id=f"e{i}", inference_id=[None, "", f"inf-{i}"][i % 3]) for i in range(300)]
    audited = 0
    for number, line in enumerate(lines):
        score = "score" if "jsonlines" in line else None
        full = parse_line(line, number, ParseOptions(score_path=score))
        fast = parse_line(line, number, ParseOptions(score_path=score, keep=rule.selects_prediction, audit=audit.selects if audit else None))
        expected = [r for r in full.rows if selected_by(rule, audit, r.probability, r.prediction, r.record_id, r.row_index)]
        assert [r.to_json() for r in fast.rows] == [r.to_json() for r in expected], line
        assert len(fast.rows) + fast.skipped + len(fast.rejected) == len(full.rows) + len(full.rejected), line
        audited += sum(not rule.selects_prediction(r.probability, r.prediction) for r in fast.rows)
    assert (audited > 100) == (audit is not None)  # the audit's rows came through both paths
