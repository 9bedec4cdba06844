"""The rehearsal's embedded AWS, built from the dev environment's synthesised templates.

Each test deploys the templates into a fresh moto (about 7 s); the app is synthesised once for the
module. What a test puts in is what the deployed loop would receive (a capture object in the
capture bucket, the clock reaching a schedule's time); what it checks is what the templates' own
wiring delivered.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from local.rehearse.cloud import Cloud, due_times
from local.rehearse.templates import ACCOUNT, REGION, StackTemplate
from stacks.shared import config as app_config
from tests.conftest import CDK_CONTEXT

ROOT = Path(__file__).resolve().parents[3]
CAPTURE_SAMPLE = ROOT / "samples" / "captures" / "held-out.jsonl"
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CAPTURE_FILTER = "lambdas.capture.handler.handler"


SYNTH_SECONDS: list[float] = []


@pytest.fixture(scope="module")
def dev_stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[StackTemplate], Path]:
    """The dev app synthesised once (``Cloud.from_app``); each test deploys a copy of its templates."""
    workdir = tmp_path_factory.mktemp("rehearsal-dev")
    started = time.monotonic()
    built = Cloud.from_app("dev", workdir)
    SYNTH_SECONDS.append(time.monotonic() - started)
    return built.stacks, workdir


@pytest.fixture(scope="module")
def dev_config() -> app_config.AppConfig:
    context = copy.deepcopy(CDK_CONTEXT)
    context["env"] = "dev"
    return app_config.load(context.get)


def deployed(dev_stacks, mutate=None) -> Cloud:
    stacks, workdir = dev_stacks
    stacks = copy.deepcopy(stacks)
    if mutate is not None:
        mutate(stacks)
    return Cloud(stacks, workdir)


@pytest.fixture
def cloud(dev_stacks):
    with deployed(dev_stacks) as built:
        built.start(now=START)
        yield built


def capture_key(config: app_config.AppConfig, at: datetime) -> str:
    # SageMaker's real-time capture layout: <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<mm-ss-sss>-<uuid>.jsonl
    return f"capture/{config.endpoint.name}/AllTraffic/{at:%Y/%m/%d/%H}/{at:%M-%S}-000-0b6c0c8e-4f4e-4a41-9a52-8c7d0a1f2e3d.jsonl"


def invocations(cloud: Cloud, handler: str) -> list[dict[str, Any]]:
    return [entry for entry in cloud.log if entry["kind"] == "invoke" and entry.get("handler") == handler]


def keys(cloud: Cloud, bucket: str, prefix: str) -> list[str]:
    return [o["Key"] for o in cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def test_the_dev_templates_deploy_with_their_wiring_and_name_what_is_not_rehearsed(dev_stacks, dev_config) -> None:
    started = time.monotonic()
    with deployed(dev_stacks) as cloud:
        cloud.start(now=START)
        seconds = time.monotonic() - started + SYNTH_SECONDS[0]
        assert seconds < 60, f"synthesising and deploying the dev app took {seconds:.0f} s"
        order = [s.id for s in cloud.stacks]
        assert order.index("Storage") < order.index("Serving") < order.index("Review") < order.index("Monitoring") < order.index("Operations")  # dependencies first
        # Every function the templates declare, with its template environment; the app's ones runnable.
        capture_filter = cloud.function(CAPTURE_FILTER)
        assert capture_filter.runnable and capture_filter.environment["ROWS_PER_LOOP"] == "3"
        review_queue = capture_filter.environment["REVIEW_QUEUE_URL"]  # a Ref to a queue: its URL
        assert cloud.client("sqs").get_queue_attributes(QueueUrl=review_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"].startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:")
        assert capture_filter.environment["MONITORING_BUCKET"] == cloud.bucket("monitoring")  # a cross-stack reference, resolved
        [storage] = [s for s in cloud.stacks if s.id == "Storage"]
        [capture_bucket] = [lid for lid, r in storage.of_type("AWS::S3::Bucket").items() if lid.startswith("Capture")]
        assert cloud.physical("Storage", capture_bucket) == cloud.physical(storage.name, capture_bucket) == cloud.bucket("capture")
        # The capture queue's mapping: the template's batch size and partial batch responses.
        [mapping] = [m for m in cloud.esms if m.function == capture_filter.name]
        assert mapping.batch_size == 1 and mapping.report_failures
        # Schedules: the data-quality monitor at minute 20 of every hour (its parameter's default, resolved through Join/Select/Split).
        expressions = {s.name: s.expression for s in cloud.schedules}
        assert expressions[f"{dev_config.app_name}-dev-data-quality"] == "cron(20 * ? * * *)"
        # Deploy-time work: the bundled model and data copied by BucketDeployment, the baselines computed by their custom resources.
        served = cloud.client("ssm").get_parameter(Name=dev_config.served_model_parameter)["Parameter"]["Value"]
        bucket, key = served[len("s3://") :].split("/", 1)
        assert key in keys(cloud, bucket, key)
        current = keys(cloud, cloud.bucket("monitoring"), "data-quality/current/")
        assert sorted(k.rsplit("/", 1)[1] for k in current) == ["constraints.json", "statistics.json"]
        assert cloud.client("sagemaker").describe_endpoint(EndpointName=dev_config.endpoint.name)["EndpointStatus"]
        text = "\n".join(cloud.unrehearsed)
        for part in ("API Gateway", "CloudFront", "Cognito", "CloudWatch alarms", "Lambda layers", "IAM", "S3AutoDeleteObjects"):
            assert part in text, f"{part} missing from unrehearsed:\n{text}"


def test_a_capture_object_reaches_the_capture_filter_through_the_templates_rule_and_queue(cloud, dev_config) -> None:
    key = capture_key(dev_config, START + timedelta(minutes=5))
    cloud.client("s3").put_object(Bucket=cloud.bucket("capture"), Key=key, Body=CAPTURE_SAMPLE.read_bytes())
    cloud.settle()
    [call] = invocations(cloud, CAPTURE_FILTER)
    assert call["ok"] and call["source"].startswith("sqs:"), call
    [delivery] = [e for e in cloud.log if e["kind"] == "deliver" and e["target"].endswith(call["source"][len("sqs:") :])]
    event = json.loads(delivery["payload"])
    assert event["detail-type"] == "Object Created" and event["detail"]["object"]["key"] == key
    # What the filter did with it, downstream: sketches for the monitors, review groups to the starter, tasks opened.
    assert keys(cloud, cloud.bucket("monitoring"), "data-quality/sketches/")
    starter = invocations(cloud, "lambdas.review.starter.handler.handler")
    assert starter and all(entry["ok"] for entry in starter)
    table = cloud.function("lambdas.review.app.api.handler").environment["TASKS_TABLE"]
    assert cloud.client("dynamodb").scan(TableName=table)["Count"] > 0


def test_a_wrong_pattern_in_the_template_delivers_nothing(dev_stacks, dev_config) -> None:
    def wrong_prefix(stacks: list[StackTemplate]) -> None:
        [review] = [s for s in stacks if s.id == "Review"]
        patterns = [r["Properties"]["EventPattern"] for r in review.of_type("AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]]
        [pattern] = patterns
        assert pattern["detail"]["object"]["key"] == [{"prefix": f"capture/{dev_config.endpoint.name}/AllTraffic/"}]
        pattern["detail"]["object"]["key"] = [{"prefix": f"capture/{dev_config.endpoint.name}-typo/AllTraffic/"}]

    with deployed(dev_stacks, wrong_prefix) as cloud:
        cloud.start(now=START)
        cloud.client("s3").put_object(Bucket=cloud.bucket("capture"), Key=capture_key(dev_config, START), Body=CAPTURE_SAMPLE.read_bytes())
        cloud.settle()
        assert invocations(cloud, CAPTURE_FILTER) == []
        assert not [e for e in cloud.log if e["kind"] == "deliver" and e["source"].startswith("rule:") and "Capture" in e["target"]]
        assert keys(cloud, cloud.bucket("monitoring"), "data-quality/sketches/") == []


def test_schedules_fire_at_their_simulated_time_with_the_scheduler_context(cloud, dev_config) -> None:
    data_quality = f"{dev_config.app_name}-dev-data-quality"
    fired = cloud.fire_schedules(START + timedelta(minutes=59))
    [hourly] = [f for f in fired if f["schedule"] == data_quality]
    assert hourly["time"] == (START + timedelta(minutes=20)).isoformat()
    [delivery] = [e for e in cloud.log if e["kind"] == "deliver" and e["source"] == f"schedule:{data_quality}"]
    assert json.loads(delivery["payload"]) == {"scheduledTime": "2026-11-22T10:20:00Z", "schedule": "cron(0 * ? * * *)"}
    # Nothing daily yet; the next hour fires the hourly one once more, the day's end the daily ones.
    assert not [f for f in fired if f["schedule"].endswith(("-explainability", "-model-quality"))]
    fired = cloud.fire_schedules(START + timedelta(hours=15))
    assert [f["time"] for f in fired if f["schedule"] == data_quality] == [(START + timedelta(hours=h, minutes=20)).isoformat() for h in range(1, 15)]
    daily = sorted(f["schedule"] for f in fired if f["time"] == "2026-11-23T00:20:00+00:00" and f["kind"] == "scheduler")
    assert daily == sorted([data_quality, f"{dev_config.app_name}-dev-explainability", f"{dev_config.app_name}-dev-model-quality"])
    redrive = [f for f in fired if f["kind"] == "rule" and "NightlyRedrive" in f["schedule"]]
    assert [f["time"] for f in redrive] == ["2026-11-23T00:05:00+00:00"]  # the review stack's nightly redrive rule, cron(5 0 * * ? *)
    cloud.settle()
    evaluator = invocations(cloud, "lambdas.monitoring.open.data_quality.handler")
    assert len(evaluator) == 15 and all(entry["source"] == f"schedule:{data_quality}" for entry in evaluator)


def test_a_variable_missing_from_the_template_fails_each_delivery_until_the_queue_redrive_parks_it(dev_stacks, dev_config) -> None:
    """The capture filter's template without REVIEW_QUEUE_URL: every invocation fails on its settings
    (the whole batch back to the queue), SQS delivers the event maxReceiveCount times, then the
    queue's redrive policy moves it to the dead-letter queue."""

    def without_review_queue(stacks: list[StackTemplate]) -> None:
        [review] = [s for s in stacks if s.id == "Review"]
        [function] = [r for r in review.of_type("AWS::Lambda::Function").values() if r["Properties"].get("Handler") == CAPTURE_FILTER]
        del function["Properties"]["Environment"]["Variables"]["REVIEW_QUEUE_URL"]

    with deployed(dev_stacks, without_review_queue) as cloud:
        cloud.start(now=START)
        key = capture_key(dev_config, START)
        cloud.client("s3").put_object(Bucket=cloud.bucket("capture"), Key=key, Body=CAPTURE_SAMPLE.read_bytes())
        cloud.settle()
        [mapping] = [m for m in cloud.esms if m.function == cloud.function(CAPTURE_FILTER).name]
        sqs = cloud.client("sqs")
        url = sqs.get_queue_url(QueueName=mapping.queue_arn.split(":")[5])["QueueUrl"]
        redrive = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
        calls = invocations(cloud, CAPTURE_FILTER)
        assert len(calls) == int(redrive["maxReceiveCount"]) and all("REVIEW_QUEUE_URL" in c["error"] for c in calls), calls
        dead_letters = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].split(":")[5])["QueueUrl"]
        parked = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
        assert [json.loads(m["Body"])["detail"]["object"]["key"] for m in parked] == [key]


def test_schedule_expressions_as_eventbridge_reads_them() -> None:
    since = datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    until = since + timedelta(days=2)
    assert due_times("cron(5 0 * * ? *)", "UTC", since, until, since) == [datetime(2026, 11, 23, 0, 5, tzinfo=UTC), datetime(2026, 11, 24, 0, 5, tzinfo=UTC)]
    # Day of week 1 is Sunday: 2026-11-22 is a Sunday.
    assert due_times("cron(0 12 ? * 1 *)", "UTC", since - timedelta(days=1), until, since) == [datetime(2026, 11, 22, 12, 0, tzinfo=UTC)]
    assert due_times("cron(0 2 * * ? *)", "Europe/Paris", since, until, since) == [datetime(2026, 11, 23, 1, 0, tzinfo=UTC), datetime(2026, 11, 24, 1, 0, tzinfo=UTC)]
    assert len(due_times("rate(5 minutes)", "UTC", since, since + timedelta(hours=1), since)) == 12
    with pytest.raises(ValueError, match="L, W and #"):
        due_times("cron(0 0 L * ? *)", "UTC", since, until, since)


def test_a_retraining_request_runs_the_synthesised_state_machine_and_its_end_comes_back_as_an_event(cloud) -> None:
    """Retraining Requested -> the template's rule -> the FIFO triggers queue -> the trigger function
    -> StartExecution of the synthesised definition -> its Lambda task runs the steps handler here.
    Without the SageMaker stand-ins (local.rehearse.sagemaker) the training task cannot run and the
    execution fails; its end reaches the trigger function again through the ExecutionEnded rule."""
    cloud.client("events").put_events(Entries=[{"Source": "mlloop.retraining", "DetailType": "Retraining Requested", "Detail": json.dumps({"reason": "test"})}])
    cloud.settle()
    triggers = invocations(cloud, "lambdas.retraining.handler.handler")
    steps = invocations(cloud, "lambdas.retraining.handler.step")
    assert len(triggers) == 2 and all(entry["ok"] for entry in triggers), triggers
    assert steps and steps[0]["source"] == "lambda:Invoke" and steps[0]["ok"]
    [ended] = [e for e in cloud.log if e["kind"] == "execution"]
    assert ended["status"] == "FAILED" and ended["source"].endswith(":stateMachine:mlloop-dev-retraining")
    [back] = [e for e in cloud.log if e["kind"] == "deliver" and e["source"].startswith("rule:") and "ExecutionEnded" in e["source"]]
    event = json.loads(back["payload"])
    assert event["detail-type"] == "Step Functions Execution Status Change" and event["detail"]["status"] == "FAILED"
    assert event["detail"]["executionArn"] == ended["target"]
    assert isinstance(event["detail"]["startDate"], int) and event["detail"]["stopDate"] >= event["detail"]["startDate"]  # epoch milliseconds


def test_an_asynchronous_invocation_that_keeps_failing_goes_to_its_on_failure_destination(dev_stacks, dev_config) -> None:
    """The data-quality evaluator without MONITORING_BUCKET: the schedule's invocation fails, Lambda
    retries it MaximumRetryAttempts times (its EventInvokeConfig), then sends the invocation record
    to the on-failure destination (the schedule-failures queue, which an alarm watches)."""

    def without_bucket(stacks: list[StackTemplate]) -> None:
        [monitoring] = [s for s in stacks if s.id == "Monitoring"]
        [function] = [r for r in monitoring.of_type("AWS::Lambda::Function").values() if r["Properties"].get("Handler") == "lambdas.monitoring.open.data_quality.handler"]
        del function["Properties"]["Environment"]["Variables"]["MONITORING_BUCKET"]

    with deployed(dev_stacks, without_bucket) as cloud:
        cloud.start(now=START)
        evaluator = cloud.function("lambdas.monitoring.open.data_quality.handler")
        config = cloud.invoke_configs[evaluator.name]
        cloud.fire_schedules(START + timedelta(minutes=30))
        cloud.settle()
        calls = invocations(cloud, evaluator.handler)
        assert len(calls) == 1 + int(config["MaximumRetryAttempts"]) and not any(c["ok"] for c in calls)
        destination = config["DestinationConfig"]["OnFailure"]["Destination"]
        sqs = cloud.client("sqs")
        url = sqs.get_queue_url(QueueName=destination.split(":")[5])["QueueUrl"]
        [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        record = json.loads(message["Body"])
        assert record["requestContext"]["condition"] == "RetriesExhausted" and record["requestContext"]["approximateInvokeCount"] == len(calls)
        assert record["requestPayload"] == {"scheduledTime": "2026-11-22T10:20:00Z", "schedule": "cron(0 * ? * * *)"}
        assert "MONITORING_BUCKET" in record["responsePayload"]["errorMessage"]


def test_a_long_poll_under_the_rehearsals_standing_clock_returns(cloud) -> None:
    """The deferred-groups redrive long-polls its queue (WaitTimeSeconds=1); with the clock pinned as a
    rehearsal pins it, moto's wait would never end: the embedded SQS answers at once."""
    import time_machine

    with time_machine.travel(START + timedelta(days=1, minutes=5), tick=False):
        started = time.monotonic()
        result = cloud.invoke("lambdas.review.starter.handler.redrive_handler", {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
        assert time.monotonic() - started < 30
    assert invocations(cloud, "lambdas.review.starter.handler.redrive_handler")[-1]["ok"], result


def test_an_event_its_target_cannot_take_goes_to_the_rules_dead_letter_queue(dev_stacks, dev_config) -> None:
    """The capture rule's target pointed at a queue that does not exist: the event is not lost, it is
    in the target's dead-letter queue (as EventBridge does after its retries), and nothing is filtered."""
    missing = f"arn:aws:sqs:{REGION}:{ACCOUNT}:no-such-queue"

    def wrong_target(stacks: list[StackTemplate]) -> None:
        [review] = [s for s in stacks if s.id == "Review"]
        [rule] = [r for r in review.of_type("AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]]
        rule["Properties"]["Targets"][0]["Arn"] = missing

    with deployed(dev_stacks, wrong_target) as cloud:
        cloud.start(now=START)
        key = capture_key(dev_config, START)
        cloud.client("s3").put_object(Bucket=cloud.bucket("capture"), Key=key, Body=CAPTURE_SAMPLE.read_bytes())
        cloud.settle()
        assert invocations(cloud, CAPTURE_FILTER) == []
        [failed] = [e for e in cloud.log if e["kind"] == "deliver-failed"]
        assert failed["target"] == missing
        [review] = [s for s in cloud.stacks if s.id == "Review"]
        [rule] = [r for r in review.of_type("AWS::Events::Rule").values() if r["Properties"].get("EventPattern", {}).get("source") == ["aws.s3"]]
        dead_letters = cloud.physical("Review", rule["Properties"]["Targets"][0]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
        [message] = cloud.client("sqs").receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
        assert json.loads(message["Body"])["detail"]["object"]["key"] == key


def test_intrinsic_functions_resolve_as_cloudformation_resolves_them() -> None:
    from local.rehearse.templates import Resolver, TemplateError

    template = {
        "Parameters": {"Email": {"Type": "String", "Default": ""}, "Schedule": {"Type": "String", "Default": "cron(0 * ? * * *)"}},
        "Conditions": {"HasEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Email"}, ""]}]}},
        "Mappings": {"Images": {REGION: {"uri": "image-in-region"}}},
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}, "Subscription": {"Type": "AWS::SNS::Subscription", "Condition": "HasEmail"}},
    }
    stack = StackTemplate("Demo", "app-demo", template)
    resolver = Resolver(
        stack, {"Email": "", "Schedule": "cron(0 * ? * * *)"},
        ref=lambda lid: f"https://queue/{lid}", attribute=lambda lid, name: f"arn:{lid}:{name}",
        output=lambda stack_name, name: f"{stack_name}/{name}", export=lambda name: f"export:{name}",
    )  # fmt: skip
    assert resolver.resolve({"Fn::Join": ["", ["cron(20 ", {"Fn::Select": [1, {"Fn::Split": ["cron(0 ", {"Ref": "Schedule"}]}]}]]}) == "cron(20 * ? * * *)"
    assert resolver.resolve({"Fn::Sub": "${AWS::StackName}-${Queue}-${Queue.Arn}-${!Literal}-${AWS::AccountId}"}) == f"app-demo-https://queue/Queue-arn:Queue:Arn-${{Literal}}-{ACCOUNT}"
    assert resolver.resolve({"Fn::Sub": ["${x}/${AWS::Region}", {"x": {"Ref": "Queue"}}]}) == f"https://queue/Queue/{REGION}"
    assert resolver.resolve({"Fn::FindInMap": ["Images", {"Ref": "AWS::Region"}, "uri"]}) == "image-in-region"
    assert resolver.resolve({"Fn::GetStackOutput": {"StackName": "app-storage", "Region": {"Ref": "AWS::Region"}, "OutputName": "Bucket"}}) == "app-storage/Bucket"
    assert resolver.resolve({"Fn::ImportValue": "shared-key"}) == "export:shared-key"
    assert resolver.resolve({"a": {"Fn::If": ["HasEmail", "yes", {"Ref": "AWS::NoValue"}]}, "b": [1, {"Ref": "AWS::NoValue"}, {"Fn::If": ["HasEmail", 2, {"Ref": "AWS::NoValue"}]}]}) == {"b": [1]}
    assert not resolver.included(template["Resources"]["Subscription"]) and resolver.included(template["Resources"]["Queue"])
    assert resolver.references({"Fn::Sub": "${Queue.Arn}", "x": {"Ref": "Email"}}) == {"Queue"}
    with pytest.raises(TemplateError, match="Ref Nothing"):
        resolver.resolve({"Ref": "Nothing"})


def test_describe_endpoint_says_how_much_the_endpoint_captures_as_sagemaker_does(cloud, dev_config) -> None:
    """The capture filter weighs each reviewed row by the endpoint's sampling percentage, read from
    DescribeEndpoint's DataCaptureConfig.CurrentSamplingPercentage (the template's parameter default)."""
    capture = cloud.client("sagemaker").describe_endpoint(EndpointName=dev_config.endpoint.name)["DataCaptureConfig"]
    [serving] = [s for s in cloud.stacks if s.id == "Serving"]
    default = int(serving.template["Parameters"]["CaptureSamplingPercentage"]["Default"])
    assert capture["EnableCapture"] is True and capture["CaptureStatus"] == "Started" and capture["CurrentSamplingPercentage"] == default
    assert capture["DestinationS3Uri"] == f"s3://{cloud.bucket('capture')}/capture"


def test_settle_waits_for_an_execution_mid_step_but_not_for_one_awaiting_an_approval(cloud) -> None:
    """A step that takes longer than settle's quiet period (here a 3 s Wait, as a training job in an
    execution's thread would) is waited for; an execution waiting for a task token is quiet."""
    sfn = cloud.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/rehearsal"
    slow = {"StartAt": "Slow", "States": {"Slow": {"Type": "Wait", "Seconds": 3, "Next": "Done"}, "Done": {"Type": "Pass", "End": True}}}
    slow_machine = sfn.create_state_machine(name="slow-step", definition=json.dumps(slow), roleArn=role)["stateMachineArn"]
    slow_run = sfn.start_execution(stateMachineArn=slow_machine, name="slow", input="{}")["executionArn"]
    cloud.settle(timeout=60, quiet_seconds=1.0)
    assert sfn.describe_execution(executionArn=slow_run)["status"] == "SUCCEEDED"

    topic = cloud.client("sns").create_topic(Name="approvals")["TopicArn"]
    approval = {"StartAt": "Approve", "States": {"Approve": {
        "Type": "Task", "Resource": "arn:aws:states:::sns:publish.waitForTaskToken", "Parameters": {"TopicArn": topic, "Message.$": "$$.Task.Token"}, "End": True,
    }}}  # fmt: skip
    approval_machine = sfn.create_state_machine(name="approval", definition=json.dumps(approval), roleArn=role)["stateMachineArn"]
    waiting = sfn.start_execution(stateMachineArn=approval_machine, name="waiting", input="{}")["executionArn"]
    started = time.monotonic()
    cloud.settle(timeout=60, quiet_seconds=1.0)
    assert time.monotonic() - started < 30 and sfn.describe_execution(executionArn=waiting)["status"] == "RUNNING"


def test_input_transformers_insert_json_values_as_eventbridge_does() -> None:
    """The monitoring alert rule's template (every value unquoted) gives valid JSON with strings
    quoted, arrays kept and a missing field null; inside quotes a value is raw text (moto's own parser
    inserted strings unquoted, which broke the evaluator that published the event)."""
    from local.rehearse.cloud import transform_input

    event = {"detail": {"monitor": "data-quality", "violationCount": 3, "features": ["mean_texture", "worst_area"], "failureReason": 'a "quoted" cause'}}
    paths = {"detail-monitor": "$.detail.monitor", "detail-violationCount": "$.detail.violationCount", "detail-features": "$.detail.features",
             "detail-failureReason": "$.detail.failureReason", "detail-reportS3Uri": "$.detail.reportS3Uri"}  # fmt: skip
    template = '{"alert":"A run","monitor":<detail-monitor>,"violationCount":<detail-violationCount>,"features":<detail-features>,"failureReason":<detail-failureReason>,"reportS3Uri":<detail-reportS3Uri>}'
    assert transform_input(template, paths, event) == {
        "alert": "A run", "monitor": "data-quality", "violationCount": 3, "features": ["mean_texture", "worst_area"], "failureReason": 'a "quoted" cause', "reportS3Uri": None,
    }  # fmt: skip
    assert transform_input('"<detail-monitor> found <detail-violationCount> violations"', paths, event) == "data-quality found 3 violations"
