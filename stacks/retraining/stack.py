"""Retrain: triggers -> one-at-a-time decisions -> the retraining state machine.

    drift alarm enters ALARM ─────────────┐
    Monitoring Run Ended ─────────────────┤  (every run of a drift schedule: a period; model quality's with violations)
    Labels Available ─────────────────────┤  EventBridge rules
    schedule (optional) ──────────────────┼──► Triggers (FIFO queue, one group) ──► retraining_triggers
    Retraining Requested (manual) ────────┤        │ state table: every trigger, the run's lock, the labels used
    retraining execution ended ───────────┘        └──► StartExecution (lock taken) ──► state machine

The state machine (``stacks/retraining/workflow.py``) trains, evaluates, optionally waits for
approval, baselines and deploys the new model with blue/green guardrails, and notifies.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.monitoring.runs.runs import RUN_ENDED
from lambdas.retraining import triggers
from lambdas.retraining.dataset import GROUND_TRUTH_PREFIX, LABELS_PREFIX, MANIFEST_FILE
from lambdas.retraining.objectives import objective
from lambdas.retraining.steps import RETRAINING_PREFIX, SCORED_DATASET, TRAINING_DATASET, run_locations
from lambdas.shared.aws import split_s3_uri
from lambdas.review.results.results import TRAINING_PREFIX
from stacks.shared import aws_facts
from stacks.shared.alerts import AlertTopic
from stacks.shared.compliance import acknowledge, acknowledge_wildcards
from stacks.shared.config import AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES, AppFunction, Invocation, dependency_layer, explain_layer
from stacks.shared.images import ContainerImage
from stacks.shared.job_roles import job_data_statements, job_runtime_statements
from stacks.monitoring.stack import MonitoringStack
from stacks.shared.ops_parameters import OpsParameters
from stacks.retraining.workflow import RetrainingWorkflow, deployment_config
from stacks.review.stack import ReviewStack
from stacks.serving.stack import ServingStack
from stacks.storage.stack import StorageStack
from stacks.shared.work_queue import WorkQueue

TRIGGER_TIMEOUT = Duration.minutes(2)


class RetrainingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        storage: StorageStack,
        serving: ServingStack,
        monitoring: MonitoringStack | None,
        review: ReviewStack | None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        retraining, prefix, key = config.retraining, config.prefix, storage.key
        # The gate computes the objective itself on the evaluation rows: refuse one it cannot, naming the key.
        objective(retraining.objective_metric, goal=retraining.objective_goal, label_count=len(config.model.label_names))
        endpoint = serving.inference
        layer = dependency_layer(self, "Dependencies")
        parameters = OpsParameters(self)
        self.notifications = AlertTopic(
            self,
            "Notifications",
            parameters=parameters,
            key=key,
            display_name=f"{config.app_name} {config.environment} retraining",
            parameter="RetrainingEmail",
            group="Retraining",
            label="Retraining e-mail (optional)",
            what="retraining results and approval requests",
        )
        datasets, models = storage.datasets, storage.models
        labels_bucket = storage.buckets["labels"] if review is not None else None
        training_data = retraining.training_data_s3_uri or serving.bundled_model.train_s3_uri
        # The evaluation rows' test set: retraining.test_data_s3_uri, else the bundled model's; with your own
        # model and none given, the validation split of the training data judges (lambdas/retraining/dataset.py).
        test_data = retraining.test_data_s3_uri or (serving.bundled_model.test_s3_uri if serving.bundled_model is not None else None)

        # --- the training job's role and fixed request fields -------------------------------
        if retraining.training_image_uri is not None:
            image = ContainerImage.from_uri(self, "TrainingImage", retraining.training_image_uri)
        else:
            image = ContainerImage.from_sdk(self, "TrainingImage", framework=config.model.framework, version=config.model.framework_version, image_scope="training")
        self.training_role = self._training_role(image, storage, key)
        training = {
            "AlgorithmSpecification": {"TrainingImage": image.uri, "TrainingInputMode": "File"},
            "RoleArn": self.training_role.role_arn,
            "HyperParameters": dict(retraining.hyperparameters),
            "ResourceConfig": {
                "InstanceType": retraining.instance_type,
                "InstanceCount": retraining.instance_count,
                "VolumeSizeInGB": retraining.volume_size_gb,
                **aws_facts.volume_key(retraining.instance_type, key.key_arn),
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": retraining.max_runtime_seconds},
            "EnableInterContainerTrafficEncryption": True,
            # SageMaker Debugger and Profiler are closed to new customers (stacks/shared/aws_facts.py): the
            # profiler is switched off explicitly, and no DebugHookConfig or rules are sent.
            "ProfilerConfig": {"DisableProfiler": True},
        }
        model = {
            "ExecutionRoleArn": endpoint.role.role_arn,
            "EnableNetworkIsolation": True,
            "PrimaryContainer": {"Image": ContainerImage.for_model(self, "InferenceImage", config.model).uri, "Mode": "SingleModel"},
        }

        # --- deployment guardrail: roll back when the new variant returns server errors -------
        rollback_alarm = f"{prefix}-deployment-errors"
        self.rollback_alarm: cloudwatch.Alarm | None = None
        if config.serving.endpoint:  # batch only: no endpoint to deploy to, so no rollback to watch for
            self._rollback_alarm(rollback_alarm, endpoint, serving)

        # --- the steps Lambda and the state machine --------------------------------------------
        # Data quality re-baselines on the new model's scores joined to the training rows (what
        # captures hold: the score, then the features); Clarify on the training rows, label first.
        templates = {}
        if monitoring is not None:
            for name, monitor, data in (("dataQuality", monitoring.data_quality, SCORED_DATASET), ("explainability", monitoring.explainability, TRAINING_DATASET)):
                if monitor is not None and monitor.baseline_template is not None:
                    templates[name] = {**monitor.baseline_template, "dataset": data}
        # The open back end has no job templates: the steps Lambda computes its baselines.
        self.open_baselines = open_baselines(config, monitoring, storage)
        scoring = any(t["dataset"] == SCORED_DATASET for t in templates.values()) or "dataQuality" in self.open_baselines
        self.steps = AppFunction(
            self,
            "Steps",
            handler="lambdas.retraining.handler.step",
            description="Retraining steps: assemble data, the promotion gate, baseline requests, deploy, promote",
            service=f"{prefix}-retraining-steps",
            invocation=Invocation.state_machine_task(state_machine="retraining"),
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            timeout=Duration.minutes(15),
            memory_size=2048,
            ephemeral_storage_mib=10_240,
            # numpy for the gate's paired bootstrap; XGBoost for the open back end's attribution
            # baseline (TreeSHAP of the new model), numpy for its data-quality baseline's sketch.
            extra_layers=(explain_layer(self),),
            environment={
                "PREFIX": prefix,
                "ENDPOINT_NAME": endpoint.endpoint_name,
                "DATASETS_BUCKET": datasets.bucket_name,
                "MODELS_BUCKET": models.bucket_name,
                "TRAINING_DATA_S3_URI": training_data,
                "LABELS_BUCKET": labels_bucket.bucket_name if labels_bucket else "",
                "FEATURE_NAMES": json.dumps(list(config.model.feature_names)),
                "LABEL_COUNT": str(len(config.model.label_names)),
                "VALIDATION_PERCENTAGE": str(retraining.validation_percentage),
                "HOLDOUT_PERCENTAGE": str(retraining.holdout_percentage),
                "TEST_DATA_S3_URI": test_data or "",
                "VARIANT_NAME": endpoint.variant_name,
                "OBJECTIVE_METRIC": retraining.objective_metric,
                "OBJECTIVE_GOAL": retraining.objective_goal,
                "TOLERANCE": str(retraining.tolerance),
                # Batch only: no endpoint to deploy to, and no rollback alarm (Deploy is not in the machine).
                "DEPLOYMENT_CONFIG": json.dumps(deployment_config(config, [rollback_alarm] if self.rollback_alarm is not None else [])),
                "SERVED_MODEL_PARAMETER": config.served_model_parameter,
            },
        )
        self._grant_steps(prefix, storage, [training_data, *([test_data] if test_data else [])], labels_bucket, monitoring, endpoint, key, config.served_model_parameter)
        pass_roles = [self.training_role, endpoint.role] + [m.role for m in (monitoring.monitors if monitoring else []) if m.baseline_template is not None]
        self.workflow = RetrainingWorkflow(
            self,
            "Workflow",
            config=config,
            steps=self.steps,
            topic=self.notifications.topic,
            key=key,
            training=training,
            model=model,
            transform_resources={"InstanceType": retraining.transform_instance_type, "InstanceCount": 1, **aws_facts.volume_key(retraining.transform_instance_type, key.key_arn)},
            score_training_set=scoring,
            pass_roles=pass_roles,
            baseline_templates=templates,
            open_baselines=self.open_baselines,
        )
        self.state_machine = self.workflow.state_machine
        # The jobs' data grants, derived from the requests the machine sends (run-time paths read as
        # the locations of every run), so a location added to a request cannot miss its grant.
        every_run = {f"$.dataset.{name}": uri for name, uri in run_locations(datasets.bucket_name, models.bucket_name, "*").items()}
        self.job_requests = {name: at_synth(request, every_run) for name, request in self.workflow.job_requests.items()}
        for statement in job_data_statements([self.job_requests["Train"]]):
            self.training_role.add_to_policy(statement)
        self._grant_model_role(endpoint, key, transforms=[request for name, request in self.job_requests.items() if name.startswith("Score")])

        # --- triggers ---------------------------------------------------------------------------
        self.table = dynamodb.Table(
            self,
            "State",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute="expiresAt",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.table,
            f"Holds the retraining triggers of the last {triggers.RETENTION_DAYS} days, the running retraining's lock and the "
            "manifest of the labels last trained on; point-in-time recovery is on, and the lineage records in the models "
            "bucket are the durable history.",
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "HIPAA.Security-DynamoDBInBackupPlan",
        )
        self.queue = WorkQueue(self, "Triggers", key=key, consumer_timeout=TRIGGER_TIMEOUT, alarm_topic=serving.alerts.topic, purpose="Retraining triggers", fifo=True)
        self.event_source = f"{config.app_name}.retraining"
        sources = {"retraining": self.event_source}
        if monitoring is not None:
            sources["monitoring"] = monitoring.events.event_source
        if review is not None:
            sources["review"] = review.pipeline.event_source
        self.triggers = AppFunction(
            self,
            "TriggerFunction",
            handler="lambdas.retraining.handler.handler",
            description="Records retraining triggers and starts one retraining at a time",
            service=f"{prefix}-retraining-triggers",
            invocation=Invocation.queue(),
            key=key,
            layer=layer,
            retain_logs=config.retain_data,
            timeout=TRIGGER_TIMEOUT,
            environment={
                "STATE_TABLE": self.table.table_name,
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "LABELS_BUCKET": labels_bucket.bucket_name if labels_bucket else "",
                "LABEL_THRESHOLD": str(retraining.label_threshold),
                "CHECK_TYPES": json.dumps(list(retraining.violation_check_types)),
                "COOLDOWN_HOURS": str(retraining.cooldown_hours),
                "DRIFT_CONSECUTIVE_PERIODS": str(retraining.drift_consecutive_periods),
                "QUALITY_VIOLATIONS": "true" if retraining.quality_violations else "false",
                "EVENT_SOURCES": json.dumps(sources),
                "DEAD_LETTER_QUEUE_URL": self.queue.dead_letter_queue.queue_url,
            },
        )
        # The calls triggers.py makes, no more (grant_read_write_data would add Scan, BatchWriteItem,
        # DescribeTable and the stream actions); the key for the table's customer-managed encryption.
        self.table.grant(self.triggers.role, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query")
        key.grant_encrypt_decrypt(self.triggers.role)
        self.triggers.allow(["states:ListExecutions"], [self.state_machine.state_machine_arn])
        self.state_machine.grant_start_execution(self.triggers.role)
        self.state_machine.grant_execution(self.triggers.role, "states:DescribeExecution")  # is a lock's run still running?
        if labels_bucket is not None:
            self.triggers.role.add_to_policy(list_prefix(labels_bucket.bucket_arn, LABELS_PREFIX))  # triggers.py counts training-rows/
            self.triggers.allow(["s3:GetObject"], [labels_bucket.arn_for_objects(f"{TRAINING_PREFIX}/*")])
            # The dataset manifest of the last training names the label objects it used.
            self.triggers.allow(["s3:GetObject"], [datasets.arn_for_objects(f"{RETRAINING_PREFIX}/*/{MANIFEST_FILE}")])
            self.triggers.allow(["kms:Decrypt"], [key.key_arn])
        self.queue.dead_letter_queue.grant_send_messages(self.triggers.role)
        self.queue.consume(self.triggers, batch_size=1)
        self.triggers.acknowledge_wildcards(
            "DynamoDB's grant covers the table's index ARNs (<table>/index/*); labels are read under training-rows/ whose "
            "object names come from the loops, and each run's manifest under retraining/<execution>/; DescribeExecution is on "
            "this state machine's executions, named at run time; kms:GenerateDataKey* and kms:ReEncrypt* (aws-cdk-lib's grants "
            "for the KMS-encrypted queues) are on the app's key only."
        )
        self.patterns = self._rules(config, monitoring, review)

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn, description="Retraining state machine (Step Functions console: executions)")
        CfnOutput(self, "StateTableName", value=self.table.table_name, description="Retraining triggers and their decisions (pk=trigger)")
        CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic.topic_arn, description="Retraining results and approval requests")
        CfnOutput(self, "LineageS3Uri", value=f"s3://{models.bucket_name}/{RETRAINING_PREFIX}/", description="Per-run lineage.json and current.json (the serving model's)")
        CfnOutput(
            self,
            "StartCommand",
            value=(
                "aws events put-events --entries '[{\"Source\":\"" + self.event_source + "\",\"DetailType\":\""
                + triggers.RETRAINING_REQUESTED + "\",\"Detail\":\"{\\\"reason\\\":\\\"manual\\\"}\"}]'"
            ),
            description="Starts a retraining (queued if one runs)",
        )  # fmt: skip

    def _rollback_alarm(self, name: str, endpoint, serving: ServingStack) -> None:
        self.rollback_alarm = cloudwatch.Alarm(
            self,
            "DeploymentErrors",
            alarm_name=name,
            alarm_description="Endpoint 5XX errors; a retraining's blue/green deployment rolls back when this alarms during its bake time.",
            metric=cloudwatch.Metric(
                namespace=aws_facts.ENDPOINT_METRICS_NAMESPACE,
                metric_name="Invocation5XXErrors",
                dimensions_map={"EndpointName": endpoint.endpoint_name, "VariantName": endpoint.variant_name},
                statistic="Sum",
                period=Duration.minutes(1),
            ),
            threshold=1,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.rollback_alarm.add_alarm_action(cw_actions.SnsAction(serving.alerts.topic))

    def _training_role(self, image: ContainerImage, storage: StorageStack, key) -> iam.Role:
        """What CreateTrainingJob's role needs: https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html#sagemaker-roles-createtrainingjob-perms"""
        role = iam.Role(self, "TrainingRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"), description="SageMaker training jobs of the retraining state machine")
        # Its data (the run's set, the model output, their keys) is derived from the Train request below.
        for statement in job_runtime_statements(self, image=image, key=key, log_group="TrainingJobs", metrics_namespace="/aws/sagemaker/TrainingJobs"):
            role.add_to_policy(statement)
        policy = role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            "Training reads the run's assembled set and writes the model under retraining/<execution>/; SageMaker names the "
            "log streams; ecr:GetAuthorizationToken and cloudwatch:PutMetricData (limited by a namespace condition) take no resource.",
        )
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)
        return role

    def _grant_steps(self, prefix: str, storage: StorageStack, data: list[str], labels_bucket, monitoring: MonitoringStack | None, endpoint, key, parameter: str) -> None:
        """``data``: the training data and the test set (dataset.py lists and reads each as a prefix)."""
        steps, stack = self.steps, Stack.of(self)
        located = [split_s3_uri(uri) for uri in data]
        # Listings by prefix: the training data and test set (dataset.py) and the run's batch-transform scores (steps.py).
        for data_bucket, data_key in located:
            steps.role.add_to_policy(list_prefix(f"arn:{stack.partition}:s3:::{data_bucket}", f"{data_key}*", like=True))
        steps.role.add_to_policy(list_prefix(storage.datasets.bucket_arn, f"{RETRAINING_PREFIX}/*", like=True))
        # Unconditioned on the models bucket: GetObject of a run's files there tells a missing object
        # (404) from a denied one only with ListBucket, and AWS does not document which s3:prefix that
        # decision evaluates (lambdas/shared/aws.py, key_listed).
        steps.allow(["s3:ListBucket"], [storage.models.bucket_arn])
        steps.allow(
            ["s3:GetObject"],
            [
                *(f"arn:{stack.partition}:s3:::{data_bucket}/{data_key}*" for data_bucket, data_key in located),
                storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*"),
                storage.datasets.arn_for_objects(f"{RETRAINING_PREFIX}/*"),  # the batch transforms' scores
            ],
        )
        steps.allow(["s3:PutObject"], [storage.datasets.arn_for_objects(f"{RETRAINING_PREFIX}/*"), storage.models.arn_for_objects(f"{RETRAINING_PREFIX}/*")])
        if labels_bucket is not None:
            # dataset.py reads training-rows/, and the ground-truth lines beside them for the labels' sampling.
            steps.role.add_to_policy(list_prefix(labels_bucket.bucket_arn, LABELS_PREFIX))
            steps.role.add_to_policy(list_prefix(labels_bucket.bucket_arn, GROUND_TRUTH_PREFIX))
            steps.allow(["s3:GetObject"], [labels_bucket.arn_for_objects(f"{TRAINING_PREFIX}/*"), labels_bucket.arn_for_objects(f"{GROUND_TRUTH_PREFIX}*")])
        if monitoring is not None:
            bucket = storage.buckets["monitoring"]
            kinds = [m.kind for m in monitoring.monitors if m.baseline_template is not None] + [spec["monitor"] for spec in self.open_baselines.values()]
            if kinds:
                steps.allow(["s3:GetObject"], [bucket.arn_for_objects(f"{kind}/baselines/*") for kind in kinds])
                steps.allow(["s3:PutObject"], [bucket.arn_for_objects(f"{kind}/{folder}/*") for kind in kinds for folder in ("baselines", "current")])
        steps.allow(["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], [key.key_arn])
        if endpoint.deployed:
            # CreateEndpointConfig/UpdateEndpoint with KMS keys: SageMaker creates grants as the caller.
            steps.role.add_to_policy(
                iam.PolicyStatement(actions=["kms:CreateGrant"], resources=[key.key_arn], conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}})
            )
        sagemaker = lambda kind, name: stack.format_arn(service="sagemaker", resource=kind, resource_name=name)  # noqa: E731
        steps.allow(["sagemaker:DescribeTrainingJob"], [sagemaker("training-job", f"{prefix}-*")])  # Evaluate records the job's own metrics
        # ServingModel: the endpoint's current model (CloudFormation-named, or a previous run's) and its artefact.
        steps.allow(["sagemaker:DescribeModel"], [sagemaker("model", "*")])
        if self.rollback_alarm is not None:
            # UpdateEndpoint's auto-rollback watches this alarm; AWS asks "your IAM execution role" to be
            # able to describe it: the caller here, the model's role in _grant_model_role.
            steps.allow(["cloudwatch:DescribeAlarms"], [self.rollback_alarm.alarm_arn])
        # Promote records the served model where the serving stack reads it (a plain String parameter).
        steps.allow(
            ["ssm:PutParameter"],
            [stack.format_arn(service="ssm", resource="parameter", resource_name=parameter.lstrip("/"))],
        )
        if endpoint.deployed:  # batch only: Promote's parameter update is the deployment (stacks/retraining/workflow.py)
            endpoint_arn = sagemaker("endpoint", endpoint.endpoint_name.lower())
            steps.allow(["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"], [endpoint_arn])
            steps.allow(["sagemaker:DescribeEndpointConfig"], [sagemaker("endpoint-config", "*")])
            steps.allow(["sagemaker:CreateEndpointConfig", "sagemaker:UpdateEndpoint", "sagemaker:AddTags"], [sagemaker("endpoint-config", f"{prefix}-*")])
        steps.acknowledge_wildcards(
            "Retraining objects live under retraining/<execution>/, baselines under <monitor>/baselines|current/ and label "
            "lines under ground-truth/<hour>/; the endpoint's current config and model have CloudFormation-generated names (or "
            "a previous run's), so DescribeEndpointConfig and DescribeModel (read-only metadata) are on any config and model, "
            f"while new configs and training jobs are only {prefix}-*; KMS data-key actions are on the app's key only."
        )

    def _grant_model_role(self, endpoint, key, *, transforms: list[dict]) -> None:
        """What retraining needs of the model's execution role, in a policy of this stack (turning
        retraining off removes it; the serving stack's own policy is unchanged):
        - the blue/green auto-rollback alarm: "Ensure that your IAM execution role has permission to
          perform the cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify"
          (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html;
          the steps function, which calls UpdateEndpoint, has it too);
        - the batch transforms run as this role (the candidate's model and the serving one have it):
          the two that score the evaluation rows and, with a data-quality re-baseline, the one that
          scores the training set: what their requests (``transforms``) read, list, write and
          encrypt with, and their logs and metrics."""
        stack = Stack.of(self)
        statements = [iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=[self.rollback_alarm.alarm_arn])] if self.rollback_alarm is not None else []
        if transforms:
            statements += [
                *job_data_statements(transforms),
                iam.PolicyStatement(actions=["kms:Decrypt", "kms:DescribeKey"], resources=[key.key_arn]),  # the SSE-KMS input
                iam.PolicyStatement(
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[stack.format_arn(service="logs", resource="log-group", resource_name="/aws/sagemaker/TransformJobs:*", arn_format=ArnFormat.COLON_RESOURCE_NAME)],
                ),
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"], resources=["*"], conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/TransformJobs*"}}
                ),
            ]
        policy = iam.ManagedPolicy(
            self,
            "ModelRolePolicy",
            description="Retraining's needs of the model's execution role: the rollback alarm, the batch transforms of the promotion gate and the baseline",
            roles=[endpoint.role],
            statements=statements,
        )
        acknowledge_wildcards(
            policy,
            policy.document,
            "The transforms read retraining/<execution>/evaluation/ (and train/) and write under retraining/<execution>/ "
            "(evaluation-scores/, scores/) with names chosen at run time; SageMaker names the log streams; "
            "cloudwatch:PutMetricData takes no resource and is limited by a namespace condition.",
        )

    def _rules(self, config: AppConfig, monitoring: MonitoringStack | None, review: ReviewStack | None) -> dict[str, dict]:
        """One rule per trigger kind, all into the FIFO queue; returns the patterns (tests read them)."""
        retraining = config.retraining
        patterns: dict[str, dict] = {
            "Requested": {"source": [self.event_source], "detail-type": [triggers.RETRAINING_REQUESTED]},
            "ExecutionEnded": {
                "source": [triggers.STATES_SOURCE],
                "detail-type": [triggers.EXECUTION_STATUS_CHANGE],
                "detail": {"stateMachineArn": [self.state_machine.state_machine_arn], "status": list(triggers.ENDED)},
            },
        }
        if monitoring is not None and monitoring.data_quality is not None and retraining.drift_alarms:
            patterns["DriftAlarm"] = {
                "source": [triggers.CLOUDWATCH_SOURCE],
                "detail-type": [triggers.ALARM_STATE_CHANGE],
                "detail": {"alarmName": [{"prefix": monitoring.data_quality.drift_alarm_prefix}], "state": {"value": ["ALARM"]}},
            }
        if monitoring is not None and (retraining.violation_check_types or retraining.drift_alarms):
            # Every run, clean ones included: each is a period of its schedule, and drift starts a run only
            # with the same evidence in consecutive periods (lambdas/retraining/triggers.py); model quality's
            # runs come through the next rule.
            patterns["MonitoringRuns"] = monitoring_runs_pattern(monitoring.events.event_source, model_quality_schedule(config))
        if monitoring is not None and config.monitoring.model_quality.enabled and retraining.quality_violations:
            patterns["QualityViolations"] = quality_violations_pattern(monitoring.events.event_source, model_quality_schedule(config))
        if review is not None:
            patterns["Labels"] = dict(review.pipeline.labels_available_pattern)
        for name, pattern in patterns.items():
            self.queue.add_rule(self, f"{name}Rule", description=f"Retraining trigger: {name}", event_pattern=_pattern(pattern))
        if retraining.schedule is not None:
            self.queue.add_rule(self, "ScheduleRule", description="Retraining trigger: schedule", schedule=events.Schedule.expression(retraining.schedule))
        return patterns


def list_prefix(bucket_arn: str, prefix: str, *, like: bool = False) -> iam.PolicyStatement:
    """s3:ListBucket on one bucket for listings under ``prefix`` only (the ``s3:prefix`` a ListObjectsV2 sends)."""
    return iam.PolicyStatement(
        actions=["s3:ListBucket"], resources=[bucket_arn], conditions={"StringLike" if like else "StringEquals": {"s3:prefix": [prefix]}}
    )


def open_baselines(config: AppConfig, monitoring: MonitoringStack | None, storage: StorageStack) -> dict[str, dict[str, Any]]:
    """The open back end's monitors retraining re-baselines (``lambdas.retraining.steps.open_baselines``):
    data quality unless it uses fixed baseline files (as the SageMaker back end), and explainability."""
    if monitoring is None or monitoring.backend != "open":
        return {}
    bucket = storage.buckets["monitoring"].bucket_name
    monitors: dict[str, dict[str, Any]] = {}
    if monitoring.data_quality is not None and config.monitoring.data_quality.computes_baseline:
        monitors["dataQuality"] = {"monitor": monitoring.data_quality.kind, "bucket": bucket, "threshold": config.monitoring.data_quality.drift_threshold}
    if monitoring.explainability is not None:
        monitors["explainability"] = {"monitor": monitoring.explainability.kind, "bucket": bucket, "label": monitoring.explainability.label}
    return monitors


def monitoring_runs_pattern(event_source: str, model_quality_schedule: str) -> dict[str, Any]:
    """Monitoring Run Ended of every schedule but model quality's, whatever its outcome (either back end publishes it)."""
    return {"source": [event_source], "detail-type": [RUN_ENDED], "detail": {"scheduleName": [{"anything-but": [model_quality_schedule]}]}}


def model_quality_schedule(config: AppConfig) -> str:
    """The model-quality monitor's schedule name (its runs' ``scheduleName``), either back end."""
    return f"{config.prefix}-model-quality"


def quality_violations_pattern(event_source: str, schedule: str) -> dict[str, Any]:
    """Monitoring Run Ended with violations of the model-quality monitor, whatever their check types."""
    return {"source": [event_source], "detail-type": [RUN_ENDED], "detail": {"outcome": ["CompletedWithViolations"], "scheduleName": [schedule]}}


def at_synth(request: dict[str, Any], uris: dict[str, str]) -> dict[str, Any]:
    """A state's request with each run-time path (``"S3Uri.$": "$.dataset.trainS3Uri"``) replaced by
    the location it takes in every run; other run-time fields (names) are left out."""
    def value(item: Any) -> Any:
        if isinstance(item, dict):
            return at_synth(item, uris)
        return [value(i) for i in item] if isinstance(item, list) else item

    resolved = {}
    for key, item in request.items():
        if key.endswith(".$"):
            if item in uris:
                resolved[key[:-2]] = uris[item]
        else:
            resolved[key] = value(item)
    return resolved


def _pattern(pattern: dict) -> events.EventPattern:
    return events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern.get("detail"))
