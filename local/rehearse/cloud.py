"""An embedded AWS holding what the app's templates declare, delivering what AWS would deliver.

``Cloud.from_app(env, workdir)`` synthesises the app (``templates.synthesise``); ``start()`` starts moto
and deploys every stack in dependency order: each template's intrinsics resolved
(``templates.Resolver``: parameters with their defaults, SSM parameter types read from the SSM
parameters deployed before, pseudo parameters for account 123456789012 in eu-west-1, outputs of
the stacks deployed before), each resource created in moto as the template declares it.

Why moto in this process (``mock_aws``) rather than moto's server: the functions run in this process
too (their handlers imported and called), so every boto3 call they make reaches moto without a socket
or a second process, and the rehearsal can hook moto where AWS delivers things moto does not
(below). Server mode would add an HTTP round trip to every call and a process to start and stop,
for nothing the rehearsal needs.

Deliveries, as AWS makes them:
- EventBridge: moto matches every event with the rule's own ``EventPattern`` (moto's matcher: a wrong
  pattern in a template means no delivery). moto delivers to SQS (with ``SqsParameters``) and logs;
  the rehearsal adds Lambda (an asynchronous invocation), SNS, Step Functions (StartExecution) and
  event-bus targets, each with the target's ``Input``, ``InputPath`` or ``InputTransformer`` (moto's
  transformer). Rules with a ``ScheduleExpression`` fire with the clock (``fire_schedules``) as
  "Scheduled Event" events.
- S3 to EventBridge: moto emits "Object Created" for a bucket whose ``NotificationConfiguration``
  has ``EventBridgeConfiguration`` (moto's own events, in EventBridge's documented shape; the
  rehearsal does not emit any itself).
- DescribeEndpoint's ``DataCaptureConfig`` is the summary SageMaker returns
  (``CurrentSamplingPercentage``...), not the endpoint config's settings as moto returns them.
- SQS long polling (``WaitTimeSeconds``) returns at once: moto would wait for its clock to pass
  the wait's end, and a rehearsal's clock stands still.
- SQS to Lambda: each event source mapping receives up to its ``BatchSize`` messages and calls the
  function with Lambda's SQS event; with ``ReportBatchItemFailures`` only the reported messages stay
  on the queue, otherwise a failed call leaves them all. A message left on the queue is made visible
  again at once (the visibility timeout elapsed) and, past the queue's ``maxReceiveCount``, moto's
  redrive moves it to the dead-letter queue.
- Asynchronous invocations: retried ``MaximumRetryAttempts`` times (EventInvokeConfig, else Lambda's
  default 2), then sent to the on-failure destination in Lambda's destination record shape.
- EventBridge Scheduler: schedules are created in moto and fired by ``fire_schedules(until)`` at each
  due time of their cron/rate/at expression in their time zone, with the target's ``Input`` and its
  context attributes (``<aws.scheduler.scheduled-time>`` ...) replaced.
- Step Functions: moto runs the resolved definitions; Lambda tasks reach the functions here (moto's
  Docker-less Lambda backend is routed to them), and each execution's end is sent to EventBridge as
  "Step Functions Execution Status Change" (``aws.states``), which moto does not emit.
- Custom resources: a CDK Provider's user handler (``USER_ON_EVENT_FUNCTION_ARN``) is called with a
  CloudFormation Create request and its ``Data`` answers ``Fn::GetAtt``; CDK's BucketDeployment
  copies its assets from the cloud assembly into the destination bucket.

What the rehearsal does not take from the templates is listed in ``unrehearsed``, each with why.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3

from local.rehearse.functions import Function, FunctionError, Runner, holding_environment
from local.rehearse.templates import ACCOUNT, PARTITION, REGION, Resolver, StackTemplate, TemplateError, parameter_defaults, read_assembly, resource_order, synthesise

# Lambda's asynchronous invocation: two retries unless an EventInvokeConfig says otherwise
# (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
DEFAULT_ASYNC_RETRIES = 2
# EventBridge Scheduler's context attributes in a target's Input
# (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-schedule-context-attributes.html).
SCHEDULER_CONTEXT = ("<aws.scheduler.schedule-arn>", "<aws.scheduler.scheduled-time>", "<aws.scheduler.execution-id>", "<aws.scheduler.attempt-number>")

# The CDK bootstrap stack's version parameter (/cdk-bootstrap/<qualifier>/version), which every
# template reads; any version the templates' CheckBootstrapVersion rule accepts (>= 6) will do.
CDK_BOOTSTRAP_PARAMETERS = "/cdk-bootstrap/"
CDK_BOOTSTRAP_VERSION = "30"

# Resource types with nothing to rehearse and nothing to say (their effect is checked elsewhere: IAM
# by the stack tests and cdk-nag).
SILENT = {"AWS::CDK::Metadata", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::Lambda::Permission", "AWS::IAM::Policy"}
NOT_REHEARSED = {
    "AWS::ApiGatewayV2": "API Gateway is not rehearsed: the reviewers' app API handler is called directly, as API Gateway would call it",
    "AWS::CloudFront": "CloudFront is not rehearsed (the reviewers' page is served locally, if at all)",
    "AWS::Cognito": "Cognito is not rehearsed: requests carry the JWT claims API Gateway's authorizer would pass",
    "AWS::CloudWatch::Alarm": "CloudWatch alarms are not evaluated (their metrics and states are not rehearsed)",
    "AWS::CloudWatch::Dashboard": "the CloudWatch dashboard is not rehearsed",
    "AWS::Lambda::LayerVersion": "Lambda layers are not rehearsed: the functions import this environment's packages",
    "AWS::IAM::ManagedPolicy": "IAM is not rehearsed: every call is allowed (permissions are checked by the stack tests and cdk-nag)",
    # The SageMaker back ends (monitoring.backend sagemaker, review.backend a2i)
    "AWS::SageMaker::MonitoringSchedule": "Model Monitor and Clarify (the SageMaker monitoring back end) are not rehearsed: their schedules never run",
    "AWS::SageMaker::DataQualityJobDefinition": "Model Monitor and Clarify (the SageMaker monitoring back end) are not rehearsed: their schedules never run",
    "AWS::SageMaker::ModelQualityJobDefinition": "Model Monitor and Clarify (the SageMaker monitoring back end) are not rehearsed: their schedules never run",
    "AWS::SageMaker::ModelExplainabilityJobDefinition": "Model Monitor and Clarify (the SageMaker monitoring back end) are not rehearsed: their schedules never run",
    "AWS::SageMaker::ModelBiasJobDefinition": "Model Monitor and Clarify (the SageMaker monitoring back end) are not rehearsed: their schedules never run",
    "Custom::A2IFlowDefinition": "A2I (the SageMaker review back end) is not rehearsed: its flow definition is not created and no human loop runs",
    "Custom::S3AutoDeleteObjects": "S3AutoDeleteObjects custom resources are skipped (they act only when a stack is deleted)",
}


@dataclass
class EventSourceMapping:
    queue_arn: str
    function: str
    batch_size: int = 10  # Lambda's default for SQS
    report_failures: bool = False
    enabled: bool = True


@dataclass
class Schedule:
    kind: str  # "scheduler" or "rule"
    name: str
    arn: str
    expression: str
    timezone: str
    targets: list[dict[str, Any]]
    anchor: datetime | None = None  # rate(): counted from here
    fired: int = 0


@dataclass
class _Invocation:
    function: str
    event: Any
    source: str
    attempt: int = 1


@dataclass
class Deployed:
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)



def transform_input(template: str | None, paths: dict[str, str], event: dict[str, Any]) -> Any:
    """An InputTransformer's output as EventBridge makes it: each ``<name>`` of ``paths`` replaced by the
    value its JSON path finds in the event, inserted as its JSON value where the placeholder stands
    outside quotes (a string gets its quotes) and as raw text inside a quoted string; a path that
    finds nothing gives ``null`` (outside quotes) or nothing (inside); the reserved
    ``<aws.events.event.json>`` and ``<aws.events.event.ingestion-time>``. JSON output is parsed, any
    other text is delivered as it is.
    https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
    moto's own parser inserts a string unquoted (invalid JSON: the monitoring alert rule's template
    broke the function publishing its event) and leaves a missing path's placeholder in place."""
    from jsonpath_ng.ext import parse

    if template is None:
        return event
    values: dict[str, Any] = {"aws.events.event.json": event, "aws.events.event.ingestion-time": event.get("ingestion-time")}
    for name, path in paths.items():
        found = parse(path).find(event)
        values[name] = found[0].value if found else None
    out, quoted, position = [], False, 0
    pattern = re.compile(r"<(" + "|".join(re.escape(name) for name in sorted(values, key=len, reverse=True)) + r")>")
    while position < len(template):
        character = template[position]
        match = pattern.match(template, position)
        if match is not None:
            value = values[match.group(1)]
            if quoted:
                out.append("" if value is None else value if isinstance(value, str) else json.dumps(value))
            else:
                out.append(json.dumps(value))
            position = match.end()
            continue
        if character == '"' and (position == 0 or template[position - 1] != "\\"):
            quoted = not quoted
        out.append(character)
        position += 1
    text = "".join(out)
    try:
        return json.loads(text)
    except ValueError:
        return text

class CloudError(Exception):
    """The rehearsal cannot go on: the message says what and where."""


class Cloud:
    def __init__(self, stacks: list[StackTemplate], workdir: Path) -> None:
        self.stacks = stacks
        self.workdir = workdir
        self.account, self.region = ACCOUNT, REGION
        self._not_rehearsed: dict[str, list[str]] = {}  # reason -> what it applies to
        self.unrehearsed: list[str] = _Unrehearsed(self)  # what the rehearsal did not take from the templates, each with why
        self.log: list[dict[str, Any]] = []
        self.functions: dict[str, Function] = {}  # by name
        self.esms: list[EventSourceMapping] = []
        self.schedules: list[Schedule] = []
        self.invoke_configs: dict[str, dict[str, Any]] = {}  # by function name
        self._deployed: dict[tuple[str, str], Deployed] = {}
        self._outputs: dict[str, dict[str, Any]] = {}  # by stack name
        self._exports: dict[str, Any] = {}
        self._pending: deque[_Invocation] = deque()
        self._executions: dict[str, str] = {}  # execution ARN -> last status seen
        self._in_flight = 0
        self._token_state_names: dict[str, set[str]] = {}  # state machine ARN -> its .waitForTaskToken states
        self._redrive: dict[str, bool] = {}
        self._queue_urls: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._state = threading.Lock()
        self._mock: Any = None
        self._patches: list[tuple[Any, str, Any]] = []
        self._schedules_until: datetime | None = None
        self.runner = Runner(set())

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def from_app(cls, env: str, workdir: Path) -> Cloud:
        """The app for ``env`` synthesised in this process into ``workdir`` (not started)."""
        return cls(synthesise(env, Path(workdir)), Path(workdir))

    @classmethod
    def from_assembly(cls, directory: Path) -> Cloud:
        """An app already synthesised into ``directory`` (a cloud assembly, e.g. ``cdk.out``)."""
        return cls(read_assembly(Path(directory)), Path(directory))

    def start(self, now: datetime | None = None, objects: Mapping[str, bytes] | None = None) -> Cloud:
        """Start moto and deploy every stack; schedules count from ``now`` (default: the clock's now).

        ``objects`` ({s3 URI: body}) are put before the first stack deploys, creating their buckets:
        what the configuration points at outside the app's own buckets (a model artefact or dataset
        the user provides), which a deploy reads (a baseline custom resource) but no template creates."""
        from moto import mock_aws

        from lambdas.shared import aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}})
        self._mock.start()
        aws.client.cache_clear()  # the functions' clients are made inside this cloud
        try:
            self._patch_moto()
            self._schedules_until = (now or datetime.now(UTC)).astimezone(UTC)
            self.runner = Runner({name for stack in self.stacks for r in stack.of_type("AWS::Lambda::Function").values() for name in r.get("Properties", {}).get("Environment", {}).get("Variables", {})})
            s3 = self.client("s3")
            for uri, body in (objects or {}).items():
                bucket, key = uri[len("s3://") :].split("/", 1)
                if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                self._unrehearsed("objects outside the app's buckets, supplied by the rehearsal (a deploy expects them to exist)", uri)
            for stack in self.stacks:
                self._deploy(stack)
        except BaseException:
            self.stop()  # a deploy that fails leaves no mock or patch behind
            raise
        return self

    def stop(self) -> None:
        for target, name, original in reversed(self._patches):
            setattr(target, name, original)
        self._patches.clear()
        if self._mock is not None:
            from lambdas.shared import aws

            self._mock.stop()
            self._mock = None
            aws.client.cache_clear()
        self._clients.clear()

    def __enter__(self) -> Cloud:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def client(self, service: str) -> Any:
        """A boto3 client of the embedded AWS (one per service; boto3 clients are thread-safe)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._clients[service]

    def _unrehearsed(self, reason: str, what: str = "") -> None:
        items = self._not_rehearsed.setdefault(reason, [])
        if what and what not in items:
            items.append(what)
        list.__setitem__(self.unrehearsed, slice(None), [f"{reason}: {', '.join(items)}" if items else reason for reason, items in self._not_rehearsed.items()])

    # -- lookups ---------------------------------------------------------------------------------
    def _stack(self, stack: str) -> StackTemplate:
        for candidate in self.stacks:
            if stack in (candidate.id, candidate.name):
                return candidate
        raise CloudError(f"no stack {stack!r}; the app has {[s.id for s in self.stacks]}")

    def physical(self, stack: str, logical_id: str) -> Any:
        """What ``Ref`` gives for a resource of a stack (a bucket's name, a queue's URL, a function's name)."""
        key = (self._stack(stack).id, logical_id)
        if key not in self._deployed:
            raise CloudError(f"{stack}: no deployed resource {logical_id}")
        return self._deployed[key].ref

    def attribute(self, stack: str, logical_id: str, name: str) -> Any:
        return self._deployed[(self._stack(stack).id, logical_id)].attributes[name]

    def output(self, stack: str, name: str) -> Any:
        return self._outputs[self._stack(stack).name][name]

    def bucket(self, role: str) -> str:
        """The bucket of a role (``capture``, ``models``, ``monitoring``...): the storage stack's ``<Role>BucketName`` output."""
        wanted = f"{role[:1].upper()}{role[1:]}BucketName"
        for outputs in self._outputs.values():
            if wanted in outputs:
                return outputs[wanted]
        known = sorted(name[: -len("BucketName")].lower() for outputs in self._outputs.values() for name in outputs if name.endswith("BucketName"))
        raise CloudError(f"no bucket for role {role!r}; roles: {known}")

    def function(self, reference: str) -> Function:
        """A function by handler path (``lambdas.capture.handler.handler``), name, ARN or logical ID."""
        if reference in self.functions:
            return self.functions[reference]
        found = [f for f in self.functions.values() if reference in (f.handler, f.arn, f.logical_id)] or [f for f in self.functions.values() if f.arn == reference.split(":$LATEST")[0]]
        if len(found) == 1:
            return found[0]
        if found:
            raise CloudError(f"{reference!r} names {len(found)} functions: {[f.name for f in found]}; use a name or logical ID")
        raise CloudError(f"no function {reference!r}; functions: {sorted(f.handler for f in self.functions.values())}")

    # -- deploying -------------------------------------------------------------------------------
    def _deploy(self, stack: StackTemplate) -> None:
        ssm = self.client("ssm")

        def read_ssm(name: str) -> str:
            if name.startswith(CDK_BOOTSTRAP_PARAMETERS):
                self._unrehearsed(f"the CDK bootstrap stack is not rehearsed: its version parameter reads {CDK_BOOTSTRAP_VERSION}", name)
                return CDK_BOOTSTRAP_VERSION
            return ssm.get_parameter(Name=name)["Parameter"]["Value"]

        parameters, placeholders = parameter_defaults(stack, read_ssm)
        for name in placeholders:
            self._unrehearsed("parameters without a default (a deploy must give them) get a placeholder value", f"{stack.id}/{name} = {parameters[name]!r}")
        resolver = Resolver(
            stack, parameters,
            ref=lambda lid: self._deployed[(stack.id, lid)].ref,
            attribute=lambda lid, name: self._attribute_of(stack, lid, name),
            output=lambda stack_name, name: self._outputs[stack_name][name],
            export=lambda name: self._exports[name],
        )  # fmt: skip
        for logical_id in resource_order(stack, resolver):
            resource = stack.resources[logical_id]
            if not resolver.included(resource):
                continue
            kind = resource["Type"]
            try:
                self._deployed[(stack.id, logical_id)] = self._create(stack, logical_id, kind, resource, resolver)
            except (TemplateError, CloudError):
                raise
            except Exception as error:
                raise CloudError(f"{stack.id}/{logical_id} ({kind}): {type(error).__name__}: {error}") from error
        outputs: dict[str, Any] = {}
        for name, output in stack.template.get("Outputs", {}).items():
            if "Condition" in output and not resolver.condition(output["Condition"]):
                continue
            outputs[name] = resolver.resolve(output["Value"])
            if "Export" in output:
                self._exports[resolver.resolve(output["Export"]["Name"])] = outputs[name]
        self._outputs[stack.name] = outputs

    def _attribute_of(self, stack: StackTemplate, logical_id: str, name: str) -> Any:
        deployed = self._deployed[(stack.id, logical_id)]
        if name not in deployed.attributes:
            raise TemplateError(f"{stack.id}: Fn::GetAtt {logical_id}.{name}: the rehearsal knows no such attribute of {stack.resources[logical_id]['Type']} (it has {sorted(deployed.attributes)})")
        return deployed.attributes[name]

    def _create(self, stack: StackTemplate, logical_id: str, kind: str, resource: dict[str, Any], resolver: Resolver) -> Deployed:
        if kind in SILENT:
            return Deployed(f"{logical_id}-rehearsal")
        for prefix, reason in NOT_REHEARSED.items():
            if kind == prefix or kind.startswith(prefix + "::"):
                self._unrehearsed(reason, kind)
                return _placeholder(stack, logical_id)
        method = getattr(self, "_create_" + kind.replace("AWS::", "").replace("::", "_").replace("Custom_", "custom_"), None)
        properties = resolver.resolve(resource.get("Properties", {}))
        if method is None:
            if kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                return self._custom_resource(stack, logical_id, kind, properties)
            self._unrehearsed("no stand-in for these resource types", f"{kind} ({stack.id}/{logical_id})")
            return _placeholder(stack, logical_id)
        return method(stack, logical_id, properties)

    @staticmethod
    def _name(stack: StackTemplate, logical_id: str, limit: int = 64, lower: bool = False) -> str:
        """A generated physical name, as CloudFormation makes one: stack name and logical ID, cut to
        the service's limit with a digest of the whole kept unique."""
        name = f"{stack.name}-{logical_id}"
        name = name.lower() if lower else name
        if len(name) <= limit:
            return name
        return f"{name[: limit - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"

    def _create_KMS_Key(self, stack, lid, p) -> Deployed:
        key = self.client("kms").create_key(Description=p.get("Description", lid))["KeyMetadata"]
        return Deployed(key["KeyId"], {"Arn": key["Arn"], "KeyId": key["KeyId"]})

    def _create_KMS_Alias(self, stack, lid, p) -> Deployed:
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"].split("/")[-1])
        return Deployed(p["AliasName"])

    def _create_S3_Bucket(self, stack, lid, p) -> Deployed:
        s3 = self.client("s3")
        name = p.get("BucketName") or re.sub(r"[^a-z0-9-]", "-", self._name(stack, lid, 63, lower=True))
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
        if p.get("VersioningConfiguration", {}).get("Status"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]})
        if "BucketEncryption" in p:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v for k, v in rule.items()} for rule in p["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        notifications = p.get("NotificationConfiguration", {})
        if "EventBridgeConfiguration" in notifications:
            if notifications["EventBridgeConfiguration"].get("EventBridgeEnabled", True):
                s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}})
        for other in set(notifications) - {"EventBridgeConfiguration"}:
            self._unrehearsed("bucket notifications other than EventBridge are not delivered", f"{other} ({stack.id}/{lid})")
        arn = f"arn:{PARTITION}:s3:::{name}"
        return Deployed(name, {"Arn": arn, "DomainName": f"{name}.s3.amazonaws.com", "RegionalDomainName": f"{name}.s3.{REGION}.amazonaws.com", "WebsiteURL": f"http://{name}.s3-website-{REGION}.amazonaws.com"})

    def _create_SQS_Queue(self, stack, lid, p) -> Deployed:
        fifo = str(p.get("FifoQueue", "false")).lower() == "true"
        name = p.get("QueueName") or self._name(stack, lid, 80 - (5 if fifo else 0)) + (".fifo" if fifo else "")
        attributes = {k: (json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool) else str(v)) for k, v in p.items() if k not in ("QueueName", "Tags")}
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}"
        return Deployed(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _create_DynamoDB_Table(self, stack, lid, p) -> Deployed:
        dynamodb = self.client("dynamodb")
        name = p.get("TableName") or self._name(stack, lid, 255)
        request: dict[str, Any] = {"TableName": name, "KeySchema": p["KeySchema"], "AttributeDefinitions": p["AttributeDefinitions"], "BillingMode": p.get("BillingMode", "PROVISIONED")}
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = {k: int(v) for k, v in p.get("ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}).items()}
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if p.get(index_kind):
                request[index_kind] = [{k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")} for index in p[index_kind]]
        if p.get("StreamSpecification"):
            request["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
            self._unrehearsed("DynamoDB streams are created but nothing reads them", f"{stack.id}/{lid}")
        table = dynamodb.create_table(**request)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True})
        return Deployed(name, {"Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn", "")})

    def _create_SNS_Topic(self, stack, lid, p) -> Deployed:
        fifo = str(p.get("FifoTopic", "false")).lower() == "true"
        name = p.get("TopicName") or self._name(stack, lid, 256 - 5) + (".fifo" if fifo else "")
        attributes = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in p.items() if k in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication")}
        arn = self.client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        return Deployed(arn, {"TopicArn": arn, "TopicName": name})

    def _create_SNS_Subscription(self, stack, lid, p) -> Deployed:
        attributes = {k: json.dumps(p[k]) if isinstance(p[k], dict) else str(p[k]).lower() if isinstance(p[k], bool) else str(p[k]) for k in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy") if k in p}
        if p["Protocol"] == "lambda":
            self._unrehearsed("SNS -> Lambda subscriptions are not delivered", f"{stack.id}/{lid}")
        arn = self.client("sns").subscribe(TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes, ReturnSubscriptionArn=True)["SubscriptionArn"]
        return Deployed(arn)

    def _create_SSM_Parameter(self, stack, lid, p) -> Deployed:
        name = p.get("Name") or f"CFN-{self._name(stack, lid)}"
        self.client("ssm").put_parameter(Name=name, Value=p["Value"], Type=p.get("Type", "String"), **({"Description": p["Description"]} if p.get("Description") else {}))
        return Deployed(name, {"Type": p.get("Type", "String"), "Value": p["Value"]})

    def _create_Logs_LogGroup(self, stack, lid, p) -> Deployed:
        name = p.get("LogGroupName") or self._name(stack, lid, 512)
        logs = self.client("logs")
        logs.create_log_group(logGroupName=name)
        if "RetentionInDays" in p:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
        return Deployed(name, {"Arn": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"})

    def _create_IAM_Role(self, stack, lid, p) -> Deployed:
        self._unrehearsed(NOT_REHEARSED["AWS::IAM::ManagedPolicy"], "AWS::IAM::Role")
        name = p.get("RoleName") or self._name(stack, lid, 64)
        role = self.client("iam").create_role(RoleName=name, Path=p.get("Path", "/"), AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"]))["Role"]
        return Deployed(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _create_Events_EventBus(self, stack, lid, p) -> Deployed:
        arn = self.client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
        return Deployed(p["Name"], {"Arn": arn, "Name": p["Name"]})

    def _create_Events_Rule(self, stack, lid, p) -> Deployed:
        events = self.client("events")
        name = p.get("Name") or self._name(stack, lid, 64)
        bus = p.get("EventBusName", "default")
        request: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED"), "EventBusName": bus}
        if "EventPattern" in p:
            request["EventPattern"] = json.dumps(p["EventPattern"])
        if "ScheduleExpression" in p:
            request["ScheduleExpression"] = p["ScheduleExpression"]
        arn = events.put_rule(**request)["RuleArn"]
        targets = p.get("Targets", [])
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        if "ScheduleExpression" in p and request["State"] == "ENABLED":
            self.schedules.append(Schedule("rule", name, arn, p["ScheduleExpression"], "UTC", targets))
        return Deployed(name, {"Arn": arn})

    def _create_Scheduler_ScheduleGroup(self, stack, lid, p) -> Deployed:
        name = p.get("Name") or self._name(stack, lid, 64)
        arn = self.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
        return Deployed(name, {"Arn": arn})

    def _create_Scheduler_Schedule(self, stack, lid, p) -> Deployed:
        name = p.get("Name") or self._name(stack, lid, 64)
        request = {k: p[k] for k in ("ScheduleExpression", "ScheduleExpressionTimezone", "FlexibleTimeWindow", "Target", "State", "Description", "GroupName") if k in p}
        arn = self.client("scheduler").create_schedule(Name=name, **request)["ScheduleArn"]
        if p.get("State", "ENABLED") == "ENABLED":
            self.schedules.append(Schedule("scheduler", name, arn, p["ScheduleExpression"], p.get("ScheduleExpressionTimezone", "UTC"), [p["Target"]]))
        return Deployed(name, {"Arn": arn})

    def _create_Lambda_Function(self, stack, lid, p) -> Deployed:
        name = p.get("FunctionName") or self._name(stack, lid, 64)
        runtime = p.get("Runtime", "python3.12")
        role = p.get("Role") or f"arn:{PARTITION}:iam::{ACCOUNT}:role/rehearsal"
        arn = self.client("lambda").create_function(
            FunctionName=name, Runtime="python3.12", Role=role, Handler=p.get("Handler", "index.handler"), Code={"ZipFile": _EMPTY_ZIP},
            Timeout=int(p.get("Timeout", 3)), MemorySize=int(p.get("MemorySize", 128)),
            Environment={"Variables": {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}},
        )["FunctionArn"]  # fmt: skip
        environment = {}
        for key, value in p.get("Environment", {}).get("Variables", {}).items():
            if not isinstance(value, str):
                raise TemplateError(f"{stack.id}/{lid}: environment variable {key} resolved to {value!r}, not a string")
            environment[key] = value
        reserved = p.get("ReservedConcurrentExecutions")
        function = Function(stack.id, lid, name, arn, p.get("Handler", ""), runtime, environment, int(p.get("Timeout", 3)), int(p.get("MemorySize", 128)), int(reserved) if reserved is not None else None)
        self.functions[name] = function
        if p.get("Layers") and function.runnable:
            self._unrehearsed(NOT_REHEARSED["AWS::Lambda::LayerVersion"], "AWS::Lambda::LayerVersion")
        return Deployed(name, {"Arn": arn})

    def _create_Lambda_EventSourceMapping(self, stack, lid, p) -> Deployed:
        if ":sqs:" not in p.get("EventSourceArn", ""):
            self._unrehearsed("event source mappings other than SQS are not rehearsed", f"{stack.id}/{lid} ({p.get('EventSourceArn')})")
            return _placeholder(stack, lid)
        mapping = EventSourceMapping(
            p["EventSourceArn"], self.function(p["FunctionName"]).name, int(p.get("BatchSize", 10)),
            "ReportBatchItemFailures" in p.get("FunctionResponseTypes", []), bool(p.get("Enabled", True)),
        )  # fmt: skip
        self.esms.append(mapping)
        return Deployed(str(uuid.uuid5(uuid.NAMESPACE_URL, f"{stack.name}/{lid}")))

    def _create_Lambda_EventInvokeConfig(self, stack, lid, p) -> Deployed:
        self.invoke_configs[self.function(p["FunctionName"]).name] = p
        return Deployed(f"{p['FunctionName']}:{p.get('Qualifier', '$LATEST')}")

    def _create_StepFunctions_StateMachine(self, stack, lid, p) -> Deployed:
        name = p.get("StateMachineName") or self._name(stack, lid, 80)
        definition = p.get("DefinitionString") or json.dumps(p["Definition"])
        for key, value in p.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", str(value))
        kind = p.get("StateMachineType", "STANDARD")
        arn = self.client("stepfunctions").create_state_machine(name=name, definition=definition, roleArn=p["RoleArn"], type=kind)["stateMachineArn"]
        return Deployed(arn, {"Arn": arn, "Name": name})

    def _create_SageMaker_Model(self, stack, lid, p) -> Deployed:
        return self._sagemaker_resource("AWS::SageMaker::Model", stack, lid, p)

    def _create_SageMaker_EndpointConfig(self, stack, lid, p) -> Deployed:
        # CloudFormation converts a Ref'd parameter (a string) to the property's type (Integer, Double).
        p = {**p, "ProductionVariants": [{**v, "InitialInstanceCount": int(v.get("InitialInstanceCount", 1)), "InitialVariantWeight": float(v.get("InitialVariantWeight", 1))} for v in p["ProductionVariants"]]}
        if "DataCaptureConfig" in p:
            p["DataCaptureConfig"] = {**p["DataCaptureConfig"], "InitialSamplingPercentage": int(p["DataCaptureConfig"]["InitialSamplingPercentage"])}
        return self._sagemaker_resource("AWS::SageMaker::EndpointConfig", stack, lid, p)

    def _create_SageMaker_Endpoint(self, stack, lid, p) -> Deployed:
        return self._sagemaker_resource("AWS::SageMaker::Endpoint", stack, lid, p)

    def _sagemaker_resource(self, kind: str, stack: StackTemplate, lid: str, p: dict[str, Any]) -> Deployed:
        from local.rehearse.sagemaker import create_sagemaker_resource  # the stand-ins' one way of creating them

        ref, attributes = create_sagemaker_resource(kind, lid, p, stack=stack.name, region=REGION)
        return Deployed(ref, attributes)

    def _create_custom_CDKBucketDeployment(self, stack, lid, p) -> Deployed:
        """CDK's BucketDeployment: each source zip from the cloud assembly, markers substituted, into the destination."""
        s3 = self.client("s3")
        bucket, prefix = p["DestinationBucketName"], p.get("DestinationBucketKeyPrefix", "")
        prefix = prefix + "/" if prefix and not prefix.endswith("/") else prefix
        keys: list[str] = []
        markers_list = p.get("SourceMarkers") or [{} for _ in p["SourceObjectKeys"]]
        for object_key, markers in zip(p["SourceObjectKeys"], markers_list, strict=True):
            asset = stack.assets.get(object_key)
            if asset is None:
                raise CloudError(f"{stack.id}/{lid}: BucketDeployment source {object_key} is not an asset of the cloud assembly")
            # Extract false: the archive itself is copied, under its own name (CDK BucketDeploymentProps.extract).
            keep_archive = p.get("Extract") in (False, "false")
            if keep_archive and not asset.path.is_file():
                self._unrehearsed("BucketDeployment with extract false from a folder asset: its files are copied extracted", f"{stack.id}/{lid}")
            files = [(Path(object_key).name, asset.path.read_bytes())] if keep_archive and asset.path.is_file() else _asset_files(asset)
            for name, body in files:
                if markers:
                    text = body.decode("utf-8", errors="surrogateescape")
                    for marker, value in markers.items():
                        text = text.replace(marker, str(value))
                    body = text.encode("utf-8", errors="surrogateescape")
                s3.put_object(Bucket=bucket, Key=prefix + name, Body=body)
                keys.append(prefix + name)
        self._log("deploy", f"{stack.id}/{lid}", f"s3://{bucket}/{prefix}", objects=len(keys))
        return Deployed(f"{lid}-rehearsal", {"DestinationBucketArn": f"arn:{PARTITION}:s3:::{bucket}", "SourceObjectKeys": keys})

    def _custom_resource(self, stack: StackTemplate, lid: str, kind: str, properties: dict[str, Any]) -> Deployed:
        """A custom resource's Create, as CloudFormation sends it to a CDK Provider's user handler."""
        token = properties.get("ServiceToken", "")
        provider = self.function(token)
        user = provider.environment.get("USER_ON_EVENT_FUNCTION_ARN")
        handler = self.function(user) if user else provider
        if not handler.runnable:
            self._unrehearsed("custom resources whose handler is not the app's code are not run", f"{kind} ({stack.id}/{lid}, {handler.handler} {handler.runtime})")
            return _placeholder(stack, lid)
        request = {
            "RequestType": "Create", "ServiceToken": token, "ResponseURL": "https://rehearsal.invalid/response",
            "StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{stack.name}/rehearsal", "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": lid, "ResourceType": kind, "ResourceProperties": _strings(properties),
        }  # fmt: skip
        try:
            result = self._call(handler, request, f"cloudformation:{stack.id}/{lid}")
        except FunctionError as error:
            raise CloudError(f"{stack.id}/{lid} ({kind}): the custom resource's Create failed: {error}") from error
        result = result or {}
        return Deployed(result.get("PhysicalResourceId", lid), dict(result.get("Data", {})))

    # -- running functions -----------------------------------------------------------------------
    def _log(self, kind: str, source: str, target: str, **details: Any) -> None:
        self.log.append({"time": datetime.now(UTC).isoformat(), "kind": kind, "source": source, "target": target, **details})

    def _call(self, function: Function, event: Any, source: str) -> Any:
        with self._state:
            self._in_flight += 1
        try:
            result, call = self.runner.run(function, event)
            self._log("invoke", source, function.name, handler=function.handler, ok=True, seconds=call["seconds"], overran=call["overran"])
            return result
        except FunctionError as error:
            self._log("invoke", source, function.name, handler=function.handler, ok=False, error=f"{error.error_type}: {error.message}")
            raise
        finally:
            with self._state:
                self._in_flight -= 1

    def invoke(self, function: str, event: Any) -> Any:
        """Calls a function (handler path, name or logical ID) synchronously with ``event``, as
        ``lambda invoke`` would; its error is raised as ``FunctionError``."""
        return self._call(self.function(function), event, "invoke")

    def invoke_async(self, function: str, event: Any, source: str = "invoke") -> None:
        """Queues an asynchronous invocation (delivered by ``settle``, with retries and destinations)."""
        self._pending.append(_Invocation(self.function(function).name, event, source))

    def _run_async(self, invocation: _Invocation) -> None:
        function = self.functions[invocation.function]
        config = self.invoke_configs.get(function.name, {})
        retries = int(config.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES))
        try:
            self._call(function, invocation.event, invocation.source)
            destination = config.get("DestinationConfig", {}).get("OnSuccess", {}).get("Destination")
            if destination:
                self._unrehearsed("on-success destinations are not delivered", function.name)
        except FunctionError as error:
            if invocation.attempt <= retries:
                self._pending.append(_Invocation(invocation.function, invocation.event, invocation.source, invocation.attempt + 1))
                return
            destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if destination:
                # Lambda's invocation record (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html)
                record = {
                    "version": "1.0", "timestamp": datetime.now(UTC).isoformat(),
                    "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{function.arn}:$LATEST", "condition": "RetriesExhausted", "approximateInvokeCount": invocation.attempt},
                    "requestPayload": invocation.event,
                    "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                    "responsePayload": error.payload(),
                }  # fmt: skip
                self._send(destination, record, f"lambda:{function.name} on-failure", {})

    # -- delivering ------------------------------------------------------------------------------
    def _send(self, arn: str, payload: Any, source: str, target: dict[str, Any]) -> None:
        """``payload`` (already the target's input) to the resource ``arn``, as EventBridge or Scheduler would."""
        body = payload if isinstance(payload, str) else json.dumps(payload)
        service = arn.split(":")[2]
        self._log("deliver", source, arn, service=service, payload=body[:2000])
        if service == "sqs":
            name = arn.split(":")[5]
            sqs = self.client("sqs")
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            extra = {}
            group = target.get("SqsParameters", {}).get("MessageGroupId")
            if group:
                extra["MessageGroupId"] = group
            sqs.send_message(QueueUrl=url, MessageBody=body, **extra)
        elif service == "lambda":
            self._pending.append(_Invocation(self.function(arn).name, json.loads(body), source))
        elif service == "sns":
            self.client("sns").publish(TopicArn=arn, Message=body)
        elif service == "states":
            # Without a name Step Functions names the execution with a UUID; moto names it "None".
            execution = self.client("stepfunctions").start_execution(stateMachineArn=arn, name=str(uuid.uuid4()), input=body)["executionArn"]
            self._executions[execution] = "RUNNING"
        elif service == "events":
            event = json.loads(body)
            self.client("events").put_events(Entries=[{"Source": event["source"], "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"]), "EventBusName": arn}])
        else:
            self._unrehearsed("targets of these services are not delivered", f"{service} ({arn}, from {source})")

    def _patch_moto(self) -> None:
        from moto.awslambda_simple.models import LambdaSimpleBackend
        from moto.events.models import Rule
        from moto.sagemaker.models import FakeEndpoint, sagemaker_backends
        from moto.sqs.models import SQSBackend
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_factory  # noqa: F401 - defines every service task
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import StateTaskService

        cloud = self
        original_send = Rule.send_to_targets

        def send_to_targets(rule: Any, event: dict[str, Any], transform_input: bool = True) -> None:
            # A rule with only a ScheduleExpression matches no event (moto matches every event with
            # an empty pattern); a disabled rule delivers nothing; S3 sends its events to the
            # default bus only (moto offers them to every bus's rules).
            if not rule.event_pattern.get_pattern() or rule.state != "ENABLED":
                return
            if event.get("source") == "aws.s3" and rule.event_bus_name not in ("default", f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:event-bus/default"):
                return
            if not rule.event_pattern.matches_event(event):
                return
            event = dict(event)
            if isinstance(event.get("time"), (int, float)):
                event["time"] = datetime.fromtimestamp(float(event["time"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            event.setdefault("ingestion-time", time.time())
            for target in rule.targets:
                if target["Arn"].split(":")[2] == "logs":
                    saved = rule.targets
                    rule.targets = [target]
                    try:
                        original_send(rule, event, transform_input)
                    finally:
                        rule.targets = saved
                    continue
                delivered = {k: v for k, v in event.items() if k != "ingestion-time"}
                if "Input" in target:
                    payload: Any = target["Input"]
                elif "InputPath" in target:
                    from jsonpath_ng.ext import parse

                    found = parse(target["InputPath"]).find(delivered)
                    payload = found[0].value if found else None
                else:
                    payload = delivered
                try:
                    if "InputTransformer" in target:
                        payload = transform_input(target["InputTransformer"].get("InputTemplate"), target["InputTransformer"].get("InputPathsMap", {}), event)
                    cloud._send(target["Arn"], payload, f"rule:{rule.name}", target)
                except Exception as error:
                    # EventBridge does not fail PutEvents for a target it cannot reach: after its
                    # retries the event goes to the target's dead-letter queue, if it has one
                    # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
                    cloud._log("deliver-failed", f"rule:{rule.name}", target["Arn"], error=f"{type(error).__name__}: {error}")
                    dead_letters = target.get("DeadLetterConfig", {}).get("Arn")
                    if dead_letters:
                        cloud._send(dead_letters, delivered, f"rule:{rule.name} dead-letter", {})

        def invoke(backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict[str, str]) -> bytes:
            event = json.loads(body) if body else {}
            function = cloud.function(function_name)
            if headers.get("X-Amz-Invocation-Type") == "Event":
                cloud._pending.append(_Invocation(function.name, event, "lambda:Invoke(Event)"))
                return b""
            try:
                return json.dumps(cloud._call(function, event, "lambda:Invoke")).encode()
            except FunctionError as error:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps(error.payload()).encode()

        original_receive = SQSBackend.receive_message

        def receive_message(backend: Any, queue_name: str, count: int, wait_seconds_timeout: int, visibility_timeout: int, message_attribute_names: Any = None) -> Any:
            # Long polling ends at once: moto waits until its clock passes the wait's end, and the
            # rehearsal's clock stands still (nothing else would deliver during the wait anyway).
            return original_receive(backend, queue_name, count, 0, visibility_timeout, message_attribute_names)

        original_endpoint = FakeEndpoint.response_object

        def endpoint_response(endpoint: Any) -> dict[str, Any]:
            # DescribeEndpoint's DataCaptureConfig is a DataCaptureConfigSummary (EnableCapture,
            # CaptureStatus, CurrentSamplingPercentage, DestinationS3Uri, KmsKeyId: all required, botocore's
            # sagemaker/2017-07-24 service model) of the endpoint config it runs; moto returns the
            # config's DataCaptureConfig as given (InitialSamplingPercentage), which the capture filter
            # cannot read its sampling percentage from.
            response = original_endpoint.fget(endpoint)
            config = sagemaker_backends[ACCOUNT][REGION].endpoint_configs.get(endpoint.endpoint_config_name)
            capture = (config.data_capture_config if config is not None else endpoint.data_capture_config) or {}
            if capture:
                enabled = bool(capture.get("EnableCapture"))
                response["DataCaptureConfig"] = {
                    "EnableCapture": enabled, "CaptureStatus": "Started" if enabled else "Stopped",
                    "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 0)),
                    "DestinationS3Uri": capture.get("DestinationS3Uri", ""), "KmsKeyId": capture.get("KmsKeyId", ""),
                }  # fmt: skip
            return response

        patches = [
            (Rule, "send_to_targets", send_to_targets), (LambdaSimpleBackend, "invoke", invoke),
            (SQSBackend, "receive_message", receive_message), (FakeEndpoint, "response_object", property(endpoint_response)),
        ]  # fmt: skip
        # Step Functions' task requests run on moto's execution threads and make boto3 clients, which
        # read os.environ while a function's call on this thread may be swapping it: each request holds
        # the environment's lock (the request only: a task waiting for its token must not hold it).
        for service in _subclasses(StateTaskService):
            if "_eval_service_task" in vars(service):
                patches.append((service, "_eval_service_task", holding_environment(vars(service)["_eval_service_task"])))
        for target, name, value in patches:
            self._patches.append((target, name, getattr(target, name)))
            setattr(target, name, value)

    def _poll(self, mapping: EventSourceMapping) -> bool:
        """One receive of an event source mapping; whether it found messages."""
        if not mapping.enabled:
            return False
        sqs = self.client("sqs")
        name = mapping.queue_arn.split(":")[5]
        url = self._queue_urls.get(name) or self._queue_urls.setdefault(name, sqs.get_queue_url(QueueName=name)["QueueUrl"])
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(mapping.batch_size, 10), AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
        if not received:
            return False
        # Lambda's SQS event (https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html#example-standard-queue-message-event)
        records = [
            {
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"], "attributes": m.get("Attributes", {}),
                "messageAttributes": {k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"), "stringListValues": [], "binaryListValues": [], "dataType": v["DataType"]} for k, v in m.get("MessageAttributes", {}).items()},
                "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": mapping.queue_arn, "awsRegion": REGION,
            }
            for m in received
        ]  # fmt: skip
        failed: set[str] = {m["MessageId"] for m in received}
        try:
            result = self._call(self.functions[mapping.function], {"Records": records}, f"sqs:{name}")
            failed = set()
            if mapping.report_failures and isinstance(result, dict):
                failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
        except FunctionError:
            pass
        redrive = self._has_redrive(url)
        for message in received:
            if message["MessageId"] in failed:
                # The visibility timeout elapses at once, so the retries (and moto's redrive to the
                # dead-letter queue after maxReceiveCount) happen in this settle; without a redrive
                # policy the message waits for its real visibility timeout instead of looping.
                if redrive:
                    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return True

    def _has_redrive(self, url: str) -> bool:
        if url not in self._redrive:
            attributes = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
            self._redrive[url] = "RedrivePolicy" in attributes
        return self._redrive[url]

    def _executions_step(self) -> tuple[bool, bool]:
        """(any execution still running and busy, any execution ended since last seen)."""
        if not self._executions:
            return False, False
        sfn = self.client("stepfunctions")
        ended = False
        running = False
        for arn, status in list(self._executions.items()):
            if status != "RUNNING":
                continue
            described = sfn.describe_execution(executionArn=arn)
            if described["status"] == "RUNNING":
                running = True
                continue
            self._executions[arn] = described["status"]
            ended = True
            # The event's detail: dates in epoch milliseconds, absent fields null (the guide's example event).
            fields = ("executionArn", "stateMachineArn", "name", "status", "startDate", "stopDate", "input", "output", "error", "cause")
            detail = {k: (int(described[k].timestamp() * 1000) if isinstance(described.get(k), datetime) else described.get(k)) for k in fields}
            self._log("execution", detail["stateMachineArn"], arn, status=described["status"])
            # What Step Functions sends to EventBridge when an execution's status changes
            # (https://docs.aws.amazon.com/step-functions/latest/dg/cw-events.html)
            self.client("events").put_events(Entries=[{"Source": "aws.states", "DetailType": "Step Functions Execution Status Change", "Detail": json.dumps(detail), "Resources": [arn]}])
        return running, ended

    def _track_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for machine in sfn.list_state_machines()["stateMachines"]:
            for execution in sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]:
                self._executions.setdefault(execution["executionArn"], "RUNNING" if execution["status"] == "RUNNING" else execution["status"])

    def settle(self, timeout: float = 600.0, quiet_seconds: float = 1.0) -> None:
        """Delivers asynchronous invocations and queue messages, and waits for running executions,
        until nothing moves. An execution counts as quiet only while it waits for a task token (an
        approval), once it has not moved for ``quiet_seconds``; any other running execution is waited
        for, so what the rehearsal sees does not depend on the machine's speed."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        history: dict[str, int] = {}
        while time.monotonic() < deadline:
            moved = False
            while self._pending:
                self._run_async(self._pending.popleft())
                moved = True
            for mapping in self.esms:
                while self._poll(mapping):
                    moved = True
            self._track_executions()
            running, ended = self._executions_step()
            moved = moved or ended
            histories: dict[str, list[dict[str, Any]]] = {}
            if running:
                sfn = self.client("stepfunctions")
                for arn, status in self._executions.items():
                    if status == "RUNNING":
                        histories[arn] = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                        if history.get(arn) != len(histories[arn]):
                            history[arn] = len(histories[arn])
                            moved = True
            with self._state:
                busy = self._in_flight > 0
            if moved or self._pending:
                quiet_since = None
                continue
            if busy:
                quiet_since = None
                time.sleep(0.05)
                continue
            if not running:
                return
            if not self._all_awaiting_tokens(histories):
                # An execution mid-step (a training job or transform in its thread, a Lambda step about
                # to start) is not quiet however long it takes: returning would let the clock move on
                # under it, and what the run sees would depend on this machine's speed.
                quiet_since = None
                time.sleep(0.05)
                continue
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= quiet_seconds:
                return
            time.sleep(0.1)
        raise CloudError(f"the cloud did not settle within {timeout} s (pending invocations: {len(self._pending)})")

    def _all_awaiting_tokens(self, histories: dict[str, list[dict[str, Any]]]) -> bool:
        """Whether every running execution (``histories``: its events, by ARN) waits for a task token
        (an approval nobody may give): the state it last entered is a ``.waitForTaskToken`` task (by
        the definition: moto's history names only the API action) and no task has ended since."""
        sfn = self.client("stepfunctions")
        for arn, events in histories.items():
            entered = None
            for event in reversed(events):
                if event["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut", "TaskSubmitFailed", "TaskStartFailed"):
                    break
                if event["type"].endswith("StateEntered"):
                    entered = event["stateEnteredEventDetails"]["name"]
                    break
            if entered is None or entered not in self._token_states(sfn, arn):
                return False
        return True

    def _token_states(self, sfn: Any, execution_arn: str) -> set[str]:
        """Names of the execution's state machine's ``.waitForTaskToken`` task states (Parallel and Map
        branches included)."""
        machine = sfn.describe_execution(executionArn=execution_arn)["stateMachineArn"]
        if machine not in self._token_state_names:
            found: set[str] = set()

            def walk(states: dict[str, Any]) -> None:
                for name, state in states.items():
                    if str(state.get("Resource", "")).endswith(".waitForTaskToken"):
                        found.add(name)
                    for branch in state.get("Branches", []) + [state.get("Iterator") or state.get("ItemProcessor") or {}]:
                        walk(branch.get("States", {}))

            walk(json.loads(sfn.describe_state_machine(stateMachineArn=machine)["definition"]).get("States", {}))
            self._token_state_names[machine] = found
        return self._token_state_names[machine]

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """For stand-ins doing work in an execution's thread (a training job): settle waits for it."""
        with self._state:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._state:
                self._in_flight -= 1

    # -- schedules -------------------------------------------------------------------------------
    def fire_schedules(self, until: datetime) -> list[dict[str, Any]]:
        """Fires every schedule (Scheduler schedules and rules' ScheduleExpression) due after the last
        call (or ``start``'s time) up to and including ``until``, in time order; returns what fired."""
        if self._schedules_until is None:
            raise CloudError("start() the cloud before firing schedules")
        since, until = self._schedules_until, until.astimezone(UTC)
        due: list[tuple[datetime, int, Schedule]] = []
        for index, schedule in enumerate(self.schedules):
            schedule.anchor = schedule.anchor or since
            try:
                for at in due_times(schedule.expression, schedule.timezone, since, until, schedule.anchor):
                    due.append((at, index, schedule))
            except ValueError as error:
                self._unrehearsed("schedules whose expression the rehearsal cannot evaluate do not fire", f"{schedule.name}: {error}")
        fired = []
        for at, _, schedule in sorted(due, key=lambda item: (item[0], item[1])):
            for target in schedule.targets:
                if schedule.kind == "scheduler":
                    payload = self._scheduler_input(schedule, target, at)
                    if target["Arn"].startswith("arn:aws:scheduler:::aws-sdk:"):
                        self._unrehearsed("Scheduler universal (aws-sdk) targets are not rehearsed", schedule.name)
                        continue
                else:
                    event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION, "resources": [schedule.arn], "detail": {}}
                    payload = target["Input"] if "Input" in target else event
                    if "InputTransformer" in target:
                        payload = transform_input(target["InputTransformer"].get("InputTemplate"), target["InputTransformer"].get("InputPathsMap", {}), {**event, "ingestion-time": at.timestamp()})
                self._send(target["Arn"], payload, f"schedule:{schedule.name}", target)
            schedule.fired += 1
            fired.append({"time": at.isoformat(), "schedule": schedule.name, "kind": schedule.kind, "targets": [t["Arn"] for t in schedule.targets]})
        self._schedules_until = until
        return fired

    @staticmethod
    def _scheduler_input(schedule: Schedule, target: dict[str, Any], at: datetime) -> str:
        text = target.get("Input", "{}")
        values = {
            "<aws.scheduler.schedule-arn>": schedule.arn,
            "<aws.scheduler.scheduled-time>": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "<aws.scheduler.execution-id>": str(uuid.uuid4()),
            "<aws.scheduler.attempt-number>": "1",
        }
        for placeholder in SCHEDULER_CONTEXT:
            text = text.replace(placeholder, values[placeholder])
        return text


class _Unrehearsed(list):
    """``Cloud.unrehearsed``: one line per reason, with what it applies to; the stand-ins append theirs."""

    def __init__(self, cloud: Cloud) -> None:
        super().__init__()
        self._cloud = cloud

    def append(self, text: str) -> None:
        self._cloud._unrehearsed(text)

    def extend(self, texts: Any) -> None:
        for text in texts:
            self.append(text)


def _strings(value: Any) -> Any:
    """Custom resource properties as CloudFormation sends them: every scalar a string."""
    if isinstance(value, dict):
        return {k: _strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _placeholder(stack: StackTemplate, logical_id: str) -> Deployed:
    """A resource not rehearsed: its Ref and attributes are names that say so."""
    value = f"rehearsal-not-deployed-{stack.id}-{logical_id}"
    return Deployed(value, _AnyAttribute(value))


class _AnyAttribute(dict):
    def __init__(self, value: str) -> None:
        super().__init__()
        self.value = value

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return f"{self.value}-{key}"


def _asset_files(asset: Any) -> Iterator[tuple[str, bytes]]:
    path: Path = asset.path
    if asset.packaging == "zip" and path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield file.relative_to(path).as_posix(), file.read_bytes()
    elif path.suffix == ".zip" or asset.packaging == "zip":
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith("/"):
                    yield name, archive.read(name)
    else:
        yield path.name, path.read_bytes()


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("rehearsal.py", "# the rehearsal runs the app's handlers in its own process\n")
    return buffer.getvalue()


_EMPTY_ZIP = _empty_zip()


# -- schedule expressions ------------------------------------------------------------------------
# EventBridge cron and rate expressions (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html,
# Scheduler: https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html): six cron fields
# (minutes hours day-of-month month day-of-week year), one of the two day fields "?", day-of-week 1-7 = SUN-SAT.
_MONTHS = {m: i for i, m in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if part in ("*", "?"):
            values |= set(range(low, high + 1))
            continue
        if any(c in part for c in "LW#"):
            raise ValueError(f"cron field {text!r}: L, W and # are not rehearsed")
        base, _, step = part.partition("/")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-")
            start, end = _value(a, names), _value(b, names)
        else:
            start = _value(base, names)
            end = high if step else start
        values |= set(range(start, end + 1, int(step) if step else 1))
    return values


def _value(text: str, names: dict[str, int] | None) -> int:
    return names[text.upper()] if names and text.upper() in names else int(text)


def due_times(expression: str, timezone: str, since: datetime, until: datetime, anchor: datetime) -> list[datetime]:
    """The times in (since, until] at which ``expression`` fires, in UTC."""
    expression = expression.strip()
    if expression.startswith("rate("):
        amount, unit = expression[5:-1].split()
        if unit not in _RATE_UNITS:
            raise ValueError(f"rate unit {unit!r} is not one of {sorted(_RATE_UNITS)}")
        period = timedelta(seconds=int(amount) * _RATE_UNITS[unit])
        times, at = [], anchor + period
        while at <= until:
            if at > since:
                times.append(at)
            at += period
        return times
    if expression.startswith("at("):
        at = datetime.fromisoformat(expression[3:-1]).replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC)
        return [at] if since < at <= until else []
    if not expression.startswith("cron("):
        raise ValueError(f"schedule expression {expression!r} is neither cron(), rate() nor at()")
    fields = expression[5:-1].split()
    if len(fields) != 6:
        raise ValueError(f"cron expression {expression!r} does not have 6 fields")
    minutes, hours, days, months = _field(fields[0], 0, 59), _field(fields[1], 0, 23), _field(fields[2], 1, 31), _field(fields[3], 1, 12, _MONTHS)
    weekdays, years = _field(fields[4], 1, 7, _DAYS), _field(fields[5], 1970, 2199)
    zone = ZoneInfo(timezone)
    times = []
    at = since.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = until.astimezone(zone)
    while at <= end:
        weekday = (at.isoweekday() % 7) + 1  # Python: Monday 1 .. Sunday 7; cron: Sunday 1 .. Saturday 7
        if at.minute in minutes and at.hour in hours and at.day in days and at.month in months and weekday in weekdays and at.year in years:
            times.append(at.astimezone(UTC))
        at += timedelta(minutes=1)
    return times


def _subclasses(cls: type) -> Iterator[type]:
    """Every subclass of ``cls``, at any depth."""
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)
