"""The nightly batch (seed 002): scheduled batch predictions of the CSV files dropped under the input
prefix, each file predicted once, then the same review loop as real-time captures.

    EventBridge Scheduler <app>-<env>-batch (batch.schedule, batch.timezone)
      --> state machine <app>-<env>-batch (Standard)
          Run (run id = execution name; time = the scheduled time, or the start time of a manual run)
          -> Plan λ: claims the input files no run has done (manifest table, conditional put), writes
             batch/runs/<run>/manifest.json (clean copies of files with malformed lines, rejected.jsonl)
          -> HasInput? no: NoInput --> "Batch Run Ended" (NoInput)
          -> ServedModel (ssm:GetParameter: the served-model parameter, what retraining promotes)
          -> CreateModel <prefix>-batch-<md5(run)> (the serving image, the model role)
          -> Transform (createTransformJob.sync: ManifestFile, Line, MultiRecord, JoinSource Input,
             DataCaptureConfig with generated inference IDs into batch/runs/<run>/capture/)
          -> Finish λ: parse the capture with the real-time parser, select, group, hand to review,
             profile, mark the files done, report.json/html --> DeleteModel --> "Batch Run Ended" (Completed)
          any error of the model or transform -> Fail λ (the files are marked failed: the next night
             retries them; nothing is reviewed) -> DeleteModel -> SNS -> "Batch Run Ended" (Failed) -> Fail
          an error of Plan or Finish -> SNS -> "Batch Run Ended" (Failed) -> Fail
    alarms: a run failed (ExecutionsFailed/TimedOut/Aborted); no run ended well in batch.overdue_hours.

Why a model per run rather than a model resource: the served-model parameter changes when retraining
promotes a model, and a model resource would follow it only at the next deploy; CreateModel reads it
at each run, so the night predicts with the model the app serves now. The run deletes its model
when it ends.

Every file the run writes is in the datasets bucket (``batch.input_prefix`` for input, and
``batch/runs/<run>/``), the Lambda code is ``lambdas/batch/handler.py`` (``step``).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.capture.filtering import REJECTED_PREFIX
from lambdas.capture.profiling import DATA_QUALITY
from stacks.review.capture import ReviewSelection, allow_selection, profiling_target, selection_environment
from stacks.review.stack import ReviewStack
from stacks.serving.stack import ServingStack
from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.shared import state_machines
from stacks.shared.schedules import app_schedule
from stacks.shared.config import BATCH_RUNS_PREFIX, AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES, AppFunction, Invocation, dependency_layer, explain_layer
from stacks.shared.images import ContainerImage
from stacks.shared.log_groups import encrypted_log_group
from stacks.shared.work_queue import alarm_at_one_message, encrypted_queue
from stacks.storage.stack import StorageStack

# "Batch Run Ended": one event per run, detail = the run's summary with ``status``.
RUN_ENDED = "Batch Run Ended"
STATUSES = ("Completed", "Failed", "NoInput")
# The longest a night's transform may take before the task gives up (Step Functions stops the job).
TRANSFORM_TIMEOUT = Duration.hours(6)
# Each run's files under batch/runs/<run>/ (lambdas/batch writes the others: report.json, report.html, rejected.jsonl).
OUTPUT_FOLDER, CAPTURE_FOLDER, INPUT_FOLDER, MANIFEST_FILE = "output", "capture", "input", "manifest.json"
# The transform's output: each line the input line, then the model's score (JoinSource "Input"; for
# CSV "the joined data has the original input data followed by the transformed data").
# https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
DATA_PROCESSING = {"JoinSource": "Input"}


def job_name_prefix(config: AppConfig) -> str:
    """Models and transform jobs are ``<prefix>-batch-<md5 of the run id>``: 32 hex digits, so the
    prefix is cut to fit SageMaker's 63 characters (aws_facts.SAGEMAKER_NAME_MAX)."""
    return f"{config.prefix[: aws_facts.SAGEMAKER_NAME_MAX - len('-batch-') - 32]}-batch"


def event_source(config: AppConfig) -> str:
    return f"{config.app_name}.batch"


class BatchStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        storage: StorageStack,
        serving: ServingStack,
        review: ReviewStack | None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        batch, prefix, key = config.batch, config.prefix, storage.key
        self._key_arn = key.key_arn
        datasets = storage.datasets
        self.event_source = event_source(config)
        self.names = job_name_prefix(config)
        topic = serving.alerts.topic
        endpoint = serving.inference  # its execution role runs the per-run models

        # --- the manifest: every input file a run claimed, and how it ended ---------------------
        self.table = dynamodb.Table(
            self,
            "Manifest",
            partition_key=dynamodb.Attribute(name="file", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.table,
            "Holds which input file each run claimed and how it ended (one item per file); point-in-time recovery is on, "
            "and each run's manifest.json and report.json in the datasets bucket are the durable record.",
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "HIPAA.Security-DynamoDBInBackupPlan",
        )

        # --- the steps function (plan, finish, fail) ----------------------------------------------
        profiling = profiling_target(config, storage)
        selection = None
        if review is not None:
            lower, upper = review.pipeline.band
            # Every batch row is predicted and read (no capture sampling): no endpoint to ask.
            selection = ReviewSelection(review.pipeline.review_queue, lower, upper, None, None)
        layer = dependency_layer(self, "Dependencies")
        self.steps = AppFunction(
            self,
            "Steps",
            handler="lambdas.batch.handler.step",
            description="Nightly batch steps: plan the run's input, finish it (review selection, profiling, report), fail it",
            service=f"{prefix}-batch",
            invocation=Invocation.state_machine_task(state_machine="batch"),
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            timeout=state_machines.STEP_TIMEOUT,
            # A night of a million rows read, parsed, selected and profiled within 15 minutes (make bench).
            memory_size=4096,
            ephemeral_storage_mib=10_240,
            extra_layers=(explain_layer(self),) if profiling is not None and DATA_QUALITY in profiling.monitors else (),
            environment={
                **selection_environment(config, selection, profiling),
                "DATA_BUCKET": datasets.bucket_name,
                "INPUT_PREFIX": batch.input_prefix,
                "RUNS_PREFIX": BATCH_RUNS_PREFIX,
                "MANIFEST_TABLE": self.table.table_name,
                "FEATURE_COUNT": str(len(config.model.feature_names)),
                "CONTENT_TYPE": batch.content_type,
                "MAX_PAYLOAD_MB": str(batch.max_payload_mb),
                # Joined output lines the capture parser rejects: rejected-captures/<bucket>/<key>.jsonl, as capture_filter's.
                "REPORT_BUCKET": datasets.bucket_name,
            },
        )
        self._grant_steps(datasets, batch.input_prefix, key)
        allow_selection(self.steps, selection, profiling)
        self.steps.acknowledge_wildcards(
            f"Object-level S3 access is limited to the input files under {batch.input_prefix} (read) and the runs' files under "
            f"{BATCH_RUNS_PREFIX} (read and written), whose names come from the input files and the run, and the reports of rejected "
            f"output lines under {REJECTED_PREFIX}/ (written); with review, the "
            "review queue; when it profiles, the current baseline it reads and the sketches and samples it writes (as capture_filter); "
            "KMS data-key actions (GenerateDataKey*, ReEncrypt*: aws-cdk-lib's grants for the KMS-encrypted queue) are on the app's key only."
        )

        # --- the model role: what the per-run model's transform reads and writes -----------------
        self._grant_model_role(endpoint.role, datasets, batch.input_prefix, key, config)

        # --- the state machine ------------------------------------------------------------------
        image = ContainerImage.for_model(self, "InferenceImage", config.model)
        self.job_request: dict[str, Any] = {}
        self.state_machine = self._state_machine(config, image, endpoint.role, topic, key, datasets.bucket_name)
        self._grant_state_machine(config, endpoint.role)

        # --- the schedule -------------------------------------------------------------------------
        self.schedule_name = f"{prefix}-batch"
        self.failures = encrypted_queue(self, "ScheduleFailures", key=key, retention=Duration.days(14))
        acknowledge(
            self.failures,
            f"This is a dead-letter queue: schedule {self.schedule_name}'s, for nightly runs EventBridge Scheduler could not start.",
            "AwsSolutions-SQS3",
        )
        alarm_at_one_message(
            self,
            "ScheduleFailuresAlarm",
            self.failures,
            f"EventBridge Scheduler could not start a nightly batch run of {prefix} (see the message); start it by hand with the message's input.",
            topic,
        )
        # The trust is limited to this account's schedules (confused deputy).
        # https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role
        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": self.account}}),
            description=f"EventBridge Scheduler: starts the nightly batch run of {prefix} and parks what it cannot start",
        )
        self.schedule_role.add_to_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[self.state_machine.state_machine_arn]))
        self.schedule_role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.failures.queue_arn]))
        self.schedule_role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
        acknowledge(self.schedule_role.node.find_child("DefaultPolicy"), ACK_INLINE_POLICY, *INLINE_POLICY_RULES)
        self.schedule_input = self.to_json_string({"time": aws_facts.SCHEDULER_SCHEDULED_TIME})
        self.schedule = app_schedule(
            self, "Schedule", name=self.schedule_name,
            description=f"Nightly batch predictions of the files under s3://<datasets bucket>/{batch.input_prefix}",
            expression=batch.schedule, timezone=batch.timezone, target_arn=self.state_machine.state_machine_arn,
            role=self.schedule_role, target_input=self.schedule_input, failures=self.failures,
        )  # fmt: skip

        # --- alarms -------------------------------------------------------------------------------
        self.failed_alarm, self.overdue_alarm = self._alarms(config, topic)

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn, description="Nightly batch state machine (Step Functions console: runs)")
        CfnOutput(self, "InputS3Uri", value=f"s3://{datasets.bucket_name}/{batch.input_prefix}", description="Drop CSV files here (one row per line, no header, the model's features in order)")
        CfnOutput(self, "RunsS3Uri", value=f"s3://{datasets.bucket_name}/{BATCH_RUNS_PREFIX}", description="Each run's manifest, output, capture, rejected lines and report, under <run id>/")
        CfnOutput(self, "ManifestTableName", value=self.table.table_name, description="Which input file each run claimed (pk=file) and how it ended")
        CfnOutput(self, "ScheduleName", value=self.schedule_name, description=f"EventBridge Scheduler schedule ({batch.schedule}, {batch.timezone})")
        CfnOutput(
            self,
            "StartCommand",
            value=f"aws stepfunctions start-execution --state-machine-arn {self.state_machine.state_machine_arn} --input '{{}}'",
            description="Runs the nightly batch now (files already done are not predicted again)",
        )

    # --- grants --------------------------------------------------------------------------------
    def _grant_steps(self, datasets, input_prefix: str, key) -> None:
        steps = self.steps
        runs = f"{BATCH_RUNS_PREFIX}*"
        # Listing: the input files (plan) and a run's capture and output (finish).
        for listed in (f"{input_prefix}*", runs):
            steps.role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[datasets.bucket_arn], conditions={"StringLike": {"s3:prefix": [listed]}})
            )
        steps.allow(["s3:GetObject"], [datasets.arn_for_objects(f"{input_prefix}*"), datasets.arn_for_objects(runs)])
        steps.allow(["s3:PutObject"], [datasets.arn_for_objects(runs), datasets.arn_for_objects(f"{REJECTED_PREFIX}/*")])
        steps.allow(["kms:Decrypt", "kms:GenerateDataKey"], [key.key_arn])
        # The claims (a conditional PutItem) and the claimed files' states (a conditional UpdateItem): lambdas/batch/nightly.py.
        self.table.grant(steps.role, "dynamodb:PutItem", "dynamodb:UpdateItem")

    def _grant_model_role(self, role: iam.IRole, datasets, input_prefix: str, key, config: AppConfig) -> None:
        """What a nightly transform needs of the model's execution role (the transform runs as it):
        the manifest and the input files it lists (read), the run's output and capture folders
        (written, encrypted with the app's key), the volume key, its logs and metrics.
        https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createtransformjob-perms"""
        runs = f"{BATCH_RUNS_PREFIX}*"
        statements = [
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    datasets.arn_for_objects(f"{input_prefix}*"),
                    datasets.arn_for_objects(f"{runs}/{MANIFEST_FILE}"),
                    datasets.arn_for_objects(f"{runs}/{INPUT_FOLDER}/*"),
                ],
            ),
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[datasets.bucket_arn]),
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[datasets.arn_for_objects(f"{runs}/{OUTPUT_FOLDER}/*"), datasets.arn_for_objects(f"{runs}/{CAPTURE_FOLDER}/*")]
            ),
            iam.PolicyStatement(actions=["kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt", "kms:DescribeKey"], resources=[key.key_arn]),
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/TransformJobs:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
            ),
            iam.PolicyStatement(actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/TransformJobs*"}}),
        ]
        if aws_facts.volume_key(config.batch.instance_type, key.key_arn):
            statements.append(iam.PolicyStatement(actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}}))
        policy = iam.ManagedPolicy(
            self,
            "ModelRolePolicy",
            description="The nightly batch's needs of the model's execution role: its transforms' input, output, capture, logs and metrics",
            roles=[role],
            statements=statements,
        )
        acknowledge_wildcards(
            policy,
            policy.document,
            f"The transforms read the input files under {input_prefix} and each run's manifest and clean copies under "
            f"{BATCH_RUNS_PREFIX}<run>/, and write its output/ and capture/ there, with names chosen at run time; SageMaker names the "
            "log streams; cloudwatch:PutMetricData takes no resource and is limited by a namespace condition.",
        )

    def _grant_state_machine(self, config: AppConfig, model_role: iam.IRole) -> None:
        """The SageMaker integrations' permissions on this app's batch names only, except ListTags,
        which AWS's policy for the ``.sync`` integrations grants on "*".
        https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html"""
        named = lambda kind: self.format_arn(service="sagemaker", resource=kind, resource_name=f"{self.names}-*")  # noqa: E731
        statements = [
            iam.PolicyStatement(
                actions=["sagemaker:CreateTransformJob", "sagemaker:DescribeTransformJob", "sagemaker:StopTransformJob"], resources=[named("transform-job")]
            ),
            iam.PolicyStatement(actions=["sagemaker:ListTags"], resources=["*"]),
            iam.PolicyStatement(actions=["sagemaker:CreateModel", "sagemaker:DeleteModel"], resources=[named("model")]),
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[self.format_arn(service="events", resource="rule", resource_name=aws_facts.SFN_SAGEMAKER_SYNC_RULES["transform"])],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[model_role.role_arn], conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
            ),
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self._key_arn]),  # the alert topic's key
        ]
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        policy = self.state_machine.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            f"Models and transform jobs are named {self.names}-<md5 of the run> at run time, so they are granted by that prefix; "
            "sagemaker:ListTags is on * as in AWS's policy for the .sync integrations (sagemaker-iam.html); X-Ray's trace and "
            "log-delivery actions take no resource ARN (aws-cdk-lib grants them); Lambda versions of the steps function.",
        )
        acknowledge(policy, "The policy belongs to the state machine's role only and changes with its definition.", *INLINE_POLICY_RULES)

    # --- the definition ------------------------------------------------------------------------
    def _state_machine(self, config: AppConfig, image: ContainerImage, model_role: iam.IRole, topic, key, bucket: str) -> sfn.StateMachine:
        batch, prefix = config.batch, config.prefix

        def step(name: str, payload: sfn.TaskInput | None = None, input_path: str | None = None) -> tasks.LambdaInvoke:
            result_path = "$.summary" if name != "Plan" else "$.plan"
            return state_machines.lambda_step(self, name, self.steps.function, payload, result_path, input_path=input_path)

        def sagemaker_task(name: str, resource: str, parameters: dict[str, Any], timeout: Duration, **state: Any) -> sfn.CustomState:
            return state_machines.sagemaker_task(self, name, resource, parameters, timeout, **state)

        def outcome(status: str) -> sfn.Pass:
            return sfn.Pass(self, f"{status}Outcome", result=sfn.Result.from_string(status), result_path="$.summary.status")

        def step_input(name: str, step_name: str, field: str, path: str) -> sfn.Chain:
            """The plan's output with ``step`` and ``field`` (the transform's description, or the error)
            added: the steps function's event (``$.plan``, its task's InputPath)."""
            first = sfn.Pass(self, name, result=sfn.Result.from_string(step_name), result_path="$.plan.step")
            return sfn.Chain.start(first).next(sfn.Pass(self, f"{name}{field.capitalize()}", input_path=path, result_path=f"$.plan.{field}"))

        def ended(name: str) -> tasks.EventBridgePutEvents:
            return tasks.EventBridgePutEvents(
                self,
                name,
                entries=[
                    tasks.EventBridgePutEventsEntry(
                        detail=sfn.TaskInput.from_json_path_at("$.summary"),
                        detail_type=RUN_ENDED,
                        source=self.event_source,
                    )
                ],
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
            )

        def delete_model(name: str) -> tasks.CallAwsService:
            return tasks.CallAwsService(
                self,
                name,
                service="sagemaker",
                action="deleteModel",
                iam_action="sagemaker:DeleteModel",
                parameters={"ModelName": sfn.JsonPath.string_at("$.names.model")},
                iam_resources=[self.format_arn(service="sagemaker", resource="model", resource_name=f"{self.names}-*")],
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
            )

        # --- the failure path: notify, tell, fail ---
        failed = sfn.Fail(self, "BatchRunFailed", error="BatchRunFailed", cause="A nightly batch step failed; the notification has the error.")
        notify = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=topic,
            subject=f"{prefix} nightly batch: run failed",
            message=sfn.TaskInput.from_json_path_at(
                "States.Format('Nightly batch run {} failed; no row of it was sent to review. Error: {}. Cause: {}', $$.Execution.Name, $.error.Error, $.error.Cause)"
            ),
            result_path=sfn.JsonPath.DISCARD,
            task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
        )
        notify.next(outcome("Failed")).next(ended("SendFailedEvent")).next(failed)
        # Without the plan's files (Plan failed) or after Finish failed: a summary of the run and its error.
        failure_summary = sfn.Pass(self, "FailureSummary", parameters={"run.$": "$$.Execution.Name", "error.$": "$.error"}, result_path="$.summary")
        failure_summary.next(notify)

        fail_input = step_input("FailInput", "fail", "error", "$.error")
        fail_step = step("FailRun", input_path="$.plan")
        fail_step.add_catch(failure_summary, errors=["States.ALL"], result_path="$.failError")
        delete_after_failure = delete_model("DeleteModelAfterFailure")
        delete_after_failure.add_catch(notify, errors=["States.ALL"], result_path="$.deleteError")
        fail_input.next(fail_step).next(delete_after_failure).next(notify)

        def caught(state, handler: sfn.IChainable):
            state.add_catch(handler, errors=["States.ALL"], result_path="$.error")
            return state

        # --- the run ---
        scheduled = sfn.Pass(self, "ScheduledRun", parameters={"run.$": "$$.Execution.Name", "time.$": "$.time"})
        manual = sfn.Pass(self, "ManualRun", parameters={"run.$": "$$.Execution.Name", "time.$": "$$.Execution.StartTime"})
        plan = caught(step("Plan", sfn.TaskInput.from_object({"step": "plan", "run.$": "$.run", "time.$": "$.time"})), failure_summary)
        scheduled.next(plan)
        manual.next(plan)
        start = sfn.Choice(self, "Scheduled").when(sfn.Condition.is_present("$.time"), scheduled).otherwise(manual)

        no_input = sfn.Pass(self, "NoInput", input_path="$.plan", result_path="$.summary")
        no_input.next(outcome("NoInput")).next(ended("SendNoInputEvent")).next(sfn.Succeed(self, "NothingToPredict"))

        runs = f"s3://{bucket}/{BATCH_RUNS_PREFIX}"
        names = sfn.Pass(
            self,
            "Names",
            parameters={
                "model.$": f"States.Format('{self.names}-{{}}', States.Hash($.plan.run, 'MD5'))",
                "output.$": f"States.Format('{runs}{{}}/{OUTPUT_FOLDER}/', $.plan.run)",
                "capture.$": f"States.Format('{runs}{{}}/{CAPTURE_FOLDER}/', $.plan.run)",
            },
            result_path="$.names",
        )
        served = caught(
            tasks.CallAwsService(
                self,
                "ServedModel",
                service="ssm",
                action="getParameter",
                iam_action="ssm:GetParameter",
                parameters={"Name": config.served_model_parameter},
                iam_resources=[self.format_arn(service="ssm", resource="parameter", resource_name=config.served_model_parameter.lstrip("/"))],
                result_selector={"modelDataUrl.$": "$.Parameter.Value"},
                result_path="$.model",
                task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
            ),
            fail_input,
        )
        create_model = caught(
            sagemaker_task(
                "CreateModel",
                "createModel",
                {
                    "ModelName.$": "$.names.model",
                    "ExecutionRoleArn": model_role.role_arn,
                    "EnableNetworkIsolation": True,
                    "PrimaryContainer": {"Image": image.uri, "Mode": "SingleModel", "ModelDataUrl.$": "$.model.modelDataUrl"},
                },
                Duration.minutes(5),
                ResultPath=sfn.JsonPath.DISCARD,
            ),
            fail_input,
        )
        key_arn = self._key_arn
        self.job_request = {
            "TransformJobName.$": "$.names.model",
            "ModelName.$": "$.names.model",
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": batch.max_payload_mb,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": aws_facts.TRANSFORM_MANIFEST_DATA_TYPE, "S3Uri.$": "$.plan.manifest_uri"}},
                "ContentType": batch.content_type,
                "SplitType": "Line",
                "CompressionType": "None",
            },
            "TransformOutput": {"S3OutputPath.$": "$.names.output", "Accept": "text/csv", "AssembleWith": "Line", "KmsKeyId": key_arn},
            "TransformResources": {"InstanceType": batch.instance_type, "InstanceCount": batch.instance_count, **aws_facts.volume_key(batch.instance_type, key_arn)},
            "DataProcessing": DATA_PROCESSING,
            # Batch data capture: the input and output of every record, each with an inference ID.
            # https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-batch.html
            "DataCaptureConfig": {"DestinationS3Uri.$": "$.names.capture", "KmsKeyId": key_arn, "GenerateInferenceId": True},
        }
        transform = caught(
            sagemaker_task("Transform", "createTransformJob.sync", self.job_request, TRANSFORM_TIMEOUT, ResultPath="$.transform"),
            fail_input,
        )
        finish_input = step_input("FinishInput", "finish", "transform", "$.transform")
        finish = caught(step("Finish", input_path="$.plan"), failure_summary)
        completed = outcome("Completed")
        delete_after_run = delete_model("DeleteModel")
        delete_after_run.add_catch(completed, errors=["States.ALL"], result_path="$.deleteError")  # the run's predictions stand
        finish_input.next(finish).next(delete_after_run).next(completed).next(ended("SendCompletedEvent")).next(sfn.Succeed(self, "Predicted"))

        has_input = sfn.Choice(self, "HasInput").when(sfn.Condition.boolean_equals("$.plan.has_input", True), names).otherwise(no_input)
        plan.next(has_input)
        names.next(served).next(create_model).next(transform).next(finish_input)

        self.log_group = encrypted_log_group(self, "Logs", key=key, retain=config.retain_data, name=f"/aws/vendedlogs/states/{prefix}-batch")
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{prefix}-batch",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(start),
            timeout=Duration.hours(12),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Nightly batch: predicts the new input files once each, then sends rows to review as captures are",
        )
        ignore_lint_check(machine.node.default_child, "W3005", "aws-cdk-lib's StateMachine adds a construct dependency on its role next to the GetAtt.")
        return machine

    def _alarms(self, config: AppConfig, topic) -> tuple[cloudwatch.Alarm, cloudwatch.Alarm]:
        machine = self.state_machine

        def metric(name: str, period: Duration) -> cloudwatch.Metric:
            return machine.metric(name, statistic="Sum", period=period)

        failed = cloudwatch.Alarm(
            self,
            "RunFailed",
            alarm_name=f"{config.prefix}-batch-run-failed",
            alarm_description="A nightly batch run failed, timed out or was stopped: its files are retried next night (the notification and the run's report.json say why).",
            metric=cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)",
                using_metrics={
                    "failed": metric("ExecutionsFailed", Duration.minutes(5)),
                    "timedOut": metric("ExecutionsTimedOut", Duration.minutes(5)),
                    "aborted": metric("ExecutionsAborted", Duration.minutes(5)),
                },
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        # One period of overdue_hours (an alarm's Period x EvaluationPeriods may reach 7 days when the
        # period is an hour or more: aws_facts.ALARM_MAX_EVALUATION_SECONDS): no execution ended well
        # in it, or no data at all (the schedule stopped), is overdue.
        overdue = cloudwatch.Alarm(
            self,
            "RunOverdue",
            alarm_name=f"{config.prefix}-batch-run-overdue",
            alarm_description=f"No nightly batch run ended well in the last {config.batch.overdue_hours} hours: check the schedule and the last runs.",
            metric=metric("ExecutionsSucceeded", Duration.hours(config.batch.overdue_hours)),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        for alarm in (failed, overdue):
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return failed, overdue
