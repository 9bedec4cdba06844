"""The retraining state machine (Standard workflow, JSONPath):

    Run (names, triggers, baseline templates)
    -> Assemble (Lambda: original data + labels -> train/ and validation/ under retraining/<execution>/)
    -> Train (sagemaker:createTrainingJob.sync)
    -> CreateModel (sagemaker:createModel: the candidate)
    -> ServingModel (Lambda: the model the endpoint serves now)
    -> ScoreEvaluationSet (Parallel: sagemaker:createTransformJob.sync of the candidate and of the
       serving model over the same evaluation rows, each line joined to the model's score)
    -> Evaluate (Lambda: the paired comparison, both figures, the difference and its interval, vs tolerance)
    -> [not promoted] NotifyNotPromoted -> NotPromoted (succeeds, promoted: false)
    -> [manual approval] Approve (sns:publish.waitForTaskToken; timeout or reject -> NotifyNotPromoted)
    -> [data-quality baseline] ScoreTrainingSet (sagemaker:createTransformJob.sync: the new model's score
       joined to each training row) -> BaselineDataset (Lambda: header + score, features per row)
    -> Baselines (Lambda: requests) -> BaselineJobs (Parallel: sagemaker:createProcessingJob.sync per monitor);
       with the open monitoring back end, Baselines (Lambda) computes the baselines itself, no jobs
    -> Deploy (Lambda: endpoint config copy + UpdateEndpoint, blue/green with auto-rollback)
    -> WaitForEndpoint / CheckEndpoint loop (UpdateEndpoint is request-only)
    -> [rolled back or failed] NotifyRollback -> Fail (the old model keeps serving)
    -> Promote (Lambda: baselines into current/, the served model's parameter, lineage) -> NotifySuccess -> Promoted

Batch only (``serving.endpoint`` false) there is no endpoint to ask or update: the serving model is
the served-model parameter's artefact (GetServedModel: ssm:GetParameter, then CreateServingModel,
named ``<run>-serving`` like its transform), and a promoted model is deployed by Promote's update of
that parameter alone (NoEndpoint records no endpoint config): the next nightly run creates its model
from it (stacks/batch).

Every task has a timeout and retries throttling; any error is caught, notified with its cause, and
fails the execution (no state reads a field a service may leave out: such a path would be a
``States.Runtime`` error, which no catch handles). The output (``promoted``, ``labelsManifest``: the
dataset manifest naming the label objects this training used) is what the trigger Lambda reads when
the execution ends.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.retraining.dataset import EVALUATION_INPUT_FILTER
from lambdas.retraining.steps import CANDIDATE, SERVING
from stacks.shared import aws_facts
from stacks.shared.compliance import acknowledge, acknowledge_wildcards, ignore_lint_check
from stacks.shared import state_machines
from stacks.shared.config import AppConfig
from stacks.shared.functions import AppFunction
from stacks.shared.log_groups import encrypted_log_group

ENDPOINT_POLL = Duration.minutes(1)
TRANSFORM_TIMEOUT = Duration.hours(2)
# The data-quality baseline's batch transform: the model reads each training row without its label
# ("$[1:]"), and each output line is the input row followed by the prediction (JoinSource "Input";
# for CSV "the joined data has the original input data followed by the transformed data"):
# https://docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html
SCORING_DATA_PROCESSING = {"InputFilter": "$[1:]", "JoinSource": "Input"}
# The evaluation transforms: the model reads the features of each evaluation line (row, weight,
# source and label filtered out), and each output line is the whole evaluation line, then the score.
EVALUATION_DATA_PROCESSING = {"InputFilter": EVALUATION_INPUT_FILTER, "JoinSource": "Input"}
# The fields of CreateProcessingJob the Baselines step returns (each present, so every path resolves);
# RoleArn is the monitor's own role, fixed in the definition.
PROCESSING_FIELDS = (
    "ProcessingJobName", "ProcessingResources", "AppSpecification", "RoleArn", "ProcessingInputs",
    "ProcessingOutputConfig", "Environment", "StoppingCondition", "NetworkConfig",
)  # fmt: skip


def deployment_config(config: AppConfig, rollback_alarms: list[str]) -> dict[str, Any]:
    """UpdateEndpoint's DeploymentConfig: blue/green, all at once or canary first, auto-rollback."""
    retraining = config.retraining
    bake = retraining.bake_minutes * 60
    routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": bake}
    if retraining.deployment == "canary":
        routing = {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": retraining.canary_percentage}, "WaitIntervalInSeconds": bake}
    return {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": bake, "MaximumExecutionTimeoutInSeconds": 3_600 + 2 * bake},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in rollback_alarms]},
    }


class RetrainingWorkflow(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        steps: AppFunction,
        topic: sns.ITopic,
        key: kms.IKey,
        training: dict[str, Any],  # CreateTrainingJob fields fixed at deploy time
        model: dict[str, Any],  # CreateModel fields fixed at deploy time (image, execution role)
        transform_resources: dict[str, Any],  # CreateTransformJob's (the evaluation transforms, and the training set's)
        score_training_set: bool,  # the data-quality baseline reads the new model's scores of the training set
        pass_roles: list[iam.IRole],
        baseline_templates: dict[str, Any],
        open_baselines: dict[str, Any] | None = None,  # the open back end's monitors (steps.open_baselines)
    ) -> None:
        endpoint = config.serving.endpoint
        keeps = "the endpoint keeps its model" if endpoint else "the served model is unchanged"
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        retraining, prefix = config.retraining, config.prefix

        def lambda_step(name: str, step: str, result_path: str, **payload: Any) -> tasks.LambdaInvoke:
            return state_machines.lambda_step(self, name, steps.function, sfn.TaskInput.from_object({"step": step, **payload}), result_path)

        def sagemaker_task(name: str, resource: str, parameters: dict[str, Any], timeout: Duration, **state: Any) -> sfn.CustomState:
            return state_machines.sagemaker_task(self, name, resource, parameters, timeout, **state)

        def notify(name: str, subject: str, *fields: str, template: str) -> tasks.SnsPublish:
            return tasks.SnsPublish(
                self,
                name,
                topic=topic,
                subject=f"{prefix} retraining: {subject}",
                message=sfn.TaskInput.from_json_path_at(f"States.Format('{template}', {', '.join(fields)})"),
                result_path=sfn.JsonPath.DISCARD,
                task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
            )

        failed = sfn.Fail(self, "RetrainingFailed", cause="A retraining step failed; the notification has the error.", error="RetrainingFailed")
        notify_failure = notify(
            "NotifyFailure",
            "failed",
            "$$.Execution.Name",
            "$.error.Error",
            "$.error.Cause",
            template=f"Retraining {{}} failed; {keeps}. Error: {{}}. Cause: {{}}",
        ).next(failed)

        def caught(state):
            state.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
            return state

        run = sfn.Pass(
            self,
            "Run",
            parameters={
                "execution.$": "$$.Execution.Name",
                "triggers.$": "$.triggers",
                "templates": baseline_templates,
            },
        )
        assemble = caught(lambda_step("Assemble", "assemble", "$.dataset", **{"execution.$": "$.execution"}))

        channel = lambda name, path: {  # noqa: E731
            "ChannelName": name,
            "ContentType": "text/csv",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": path, "S3DataDistributionType": "FullyReplicated"}},
        }
        # The SageMaker job requests as the machine sends them (JSONPath fields resolved at run time):
        # the stack derives the job roles' grants from them.
        self.job_requests: dict[str, dict[str, Any]] = {}
        self.job_requests["Train"] = {
            "TrainingJobName.$": "$.dataset.names.trainingJob",
            **training,
            "InputDataConfig": [channel("train", "$.dataset.trainS3Uri"), channel("validation", "$.dataset.validationS3Uri")],
            "OutputDataConfig": {"S3OutputPath.$": "$.dataset.modelOutputS3Uri", "KmsKeyId": key.key_arn},
        }
        train = caught(
            sagemaker_task(
                "Train",
                "createTrainingJob.sync",
                self.job_requests["Train"],
                Duration.seconds(retraining.max_runtime_seconds + 3_600),
                # Fields every completed job has; the metrics (absent when a job reports none) are
                # read by Evaluate, where their absence is an error the catch notifies.
                ResultSelector={"TrainingJobName.$": "$.TrainingJobName", "ModelArtifacts.$": "$.ModelArtifacts"},
                ResultPath="$.training",
            )
        )
        create_model = caught(
            sagemaker_task(
                "CreateModel",
                "createModel",
                {"ModelName.$": "$.dataset.names.model", **model, "PrimaryContainer": {**model["PrimaryContainer"], "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts"}},
                Duration.minutes(5),
                ResultPath=sfn.JsonPath.DISCARD,
            )
        )
        serving_model: sfn.IChainable
        if endpoint:
            serving_model = caught(lambda_step("ServingModel", "servingModel", "$.serving"))
        else:
            parameter = config.served_model_parameter
            served = caught(
                tasks.CallAwsService(
                    self,
                    "GetServedModel",
                    service="ssm",
                    action="getParameter",
                    iam_action="ssm:GetParameter",
                    parameters={"Name": parameter},
                    iam_resources=[stack.format_arn(service="ssm", resource="parameter", resource_name=parameter.lstrip("/"))],
                    result_selector={"artifactS3Uri.$": "$.Parameter.Value"},
                    result_path="$.served",
                    task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
                )
            )
            create_serving = caught(
                sagemaker_task(
                    "CreateServingModel",
                    "createModel",
                    {"ModelName.$": "$.dataset.names.servingTransformJob", **model, "PrimaryContainer": {**model["PrimaryContainer"], "ModelDataUrl.$": "$.served.artifactS3Uri"}},
                    Duration.minutes(5),
                    ResultPath=sfn.JsonPath.DISCARD,
                )
            )
            serving_model = sfn.Chain.start(served).next(create_serving).next(
                sfn.Pass(
                    self,
                    "ServingModel",
                    parameters={"modelName.$": "$.dataset.names.servingTransformJob", "artifactS3Uri.$": "$.served.artifactS3Uri"},
                    result_path="$.serving",
                )
            )

        def transform(name: str, job: str, model_name: str, source: str, output: str, processing: dict[str, str]) -> dict[str, Any]:
            """A CreateTransformJob request: the CSV lines under ``source`` through the model, each
            output line the input line joined to the model's output (``processing``)."""
            self.job_requests[name] = {
                "TransformJobName.$": job,
                "ModelName.$": model_name,
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": source}},
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                    "CompressionType": "None",
                },
                "TransformOutput": {"S3OutputPath.$": output, "Accept": "text/csv", "AssembleWith": "Line", "KmsKeyId": key.key_arn},
                "TransformResources": transform_resources,
                "DataProcessing": processing,
            }
            return self.job_requests[name]

        # Both models score the same evaluation rows; the serving model is the endpoint's own
        # SageMaker model (ServingModel), so nothing is created for it.
        evaluation_scores = [
            sagemaker_task(
                f"Score{model.capitalize()}",
                "createTransformJob.sync",
                transform(f"Score{model.capitalize()}", f"$.dataset.names.{model}TransformJob", model_name, "$.dataset.evaluationS3Uri", f"$.dataset.{model}ScoresS3Uri", EVALUATION_DATA_PROCESSING),
                TRANSFORM_TIMEOUT,
                ResultPath=sfn.JsonPath.DISCARD,
            )
            for model, model_name in ((CANDIDATE, "$.dataset.names.model"), (SERVING, "$.serving.modelName"))
        ]
        score_evaluation = caught(sfn.Parallel(self, "ScoreEvaluationSet", result_path=sfn.JsonPath.DISCARD).branch(*evaluation_scores))
        evaluate = caught(
            lambda_step(
                "Evaluate", "evaluate", "$.evaluation",
                **{"names.$": "$.dataset.names", "dataset.$": "$.dataset", "serving.$": "$.serving", "training.$": "$.training"},
            )  # fmt: skip
        )

        not_promoted = sfn.Pass(
            self,
            "NotPromoted",
            parameters={
                "promoted": False, "execution.$": "$.execution", "labelsThrough.$": "$.dataset.labelsThrough",
                "labelsManifest.$": "$.dataset.manifestS3Uri", "evaluation.$": "$.evaluation",
            },  # fmt: skip
        )
        notify_not_promoted = notify(
            "NotifyNotPromoted",
            "model not promoted",
            "$$.Execution.Name",
            "$.evaluation.reason",
            "$.dataset.names.trainingJob",
            template=f"Retraining {{}} did not promote its model: {{}}. Training job: {{}}. {keeps[0].upper()}{keeps[1:]}.",
        ).next(not_promoted)

        baseline_inputs = {"templates.$": "$.templates", "dataset.$": "$.dataset", "names.$": "$.dataset.names"}
        scoring: sfn.IChainable | None = None
        if score_training_set:
            request = transform(
                "ScoreTrainingSet", "$.dataset.names.transformJob", "$.dataset.names.model", "$.dataset.trainS3Uri", "$.dataset.scoresS3Uri", SCORING_DATA_PROCESSING
            )
            score = caught(sagemaker_task("ScoreTrainingSet", "createTransformJob.sync", request, TRANSFORM_TIMEOUT, ResultPath=sfn.JsonPath.DISCARD))
            baseline_dataset = caught(
                lambda_step("BaselineDataset", "baselineDataset", "$.baselineDataset", **{"dataset.$": "$.dataset", "names.$": "$.dataset.names"})
            )
            scoring = score.next(baseline_dataset)
            baseline_inputs["baselineDataset.$"] = "$.baselineDataset"
        baseline_jobs: sfn.IChainable | None
        if open_baselines:
            # The open back end has no jobs: the step computes the baselines with the deploy-time code.
            baselines = caught(
                lambda_step("Baselines", "openBaselines", "$.baselines", monitors=open_baselines, **{**baseline_inputs, "training.$": "$.training"})
            )
        else:
            baselines = caught(lambda_step("Baselines", "baselines", "$.baselines", **baseline_inputs))
        # One branch per monitor: the role (and so PassRole) is fixed per monitor; the rest of
        # the request is this run's, from the Baselines step.
        branches = []
        for monitor, template in baseline_templates.items():
            fields = {f"{field}.$": f"$.baselines.jobs.{monitor}.{field}" for field in PROCESSING_FIELDS if field != "RoleArn"}
            branches.append(
                sagemaker_task(
                    f"{monitor[0].upper()}{monitor[1:]}Baseline",
                    "createProcessingJob.sync",
                    {**fields, "RoleArn": template["request"]["RoleArn"]},
                    Duration.seconds(template["request"]["StoppingCondition"]["MaxRuntimeInSeconds"] + 3_600),
                )
            )
        if branches:
            baseline_jobs = caught(sfn.Parallel(self, "BaselineJobs", result_path=sfn.JsonPath.DISCARD).branch(*branches))
        elif open_baselines:
            baseline_jobs = None
        else:
            baseline_jobs = sfn.Pass(self, "NoBaselines", comment="No monitor computes a baseline")
        if endpoint:
            deploy = caught(lambda_step("Deploy", "deploy", "$.deployment", **{"names.$": "$.dataset.names"}))
            wait = sfn.Wait(self, "WaitForEndpoint", time=sfn.WaitTime.duration(ENDPOINT_POLL))
            check = caught(lambda_step("CheckEndpoint", "endpoint", "$.endpoint", **{"deployment.$": "$.deployment"}))
            rolled_back = sfn.Fail(self, "DeploymentRolledBack", error="DeploymentRolledBack", cause="The endpoint did not take the new model; it serves the previous one.")
            notify_rollback = notify(
                "NotifyRollback",
                "deployment rolled back",
                "$$.Execution.Name",
                "$.endpoint.status",
                "$.endpoint.endpointConfigName",
                "$.endpoint.failureReason",
                template="Retraining {} could not deploy its model: the endpoint is {} on {} ({}). The previous model keeps serving.",
            ).next(rolled_back)
        promote = caught(
            lambda_step(
                "Promote",
                "promote",
                "$.promotion",
                **{
                    "names.$": "$.dataset.names",
                    "training.$": "$.training",
                    "evaluation.$": "$.evaluation",
                    "dataset.$": "$.dataset",
                    "deployment.$": "$.deployment",
                    "baselines.$": "$.baselines.monitors",
                    "triggers.$": "$.triggers",
                },
            )
        )
        promoted = sfn.Pass(
            self,
            "Promoted",
            parameters={
                "promoted": True, "execution.$": "$.execution", "labelsThrough.$": "$.dataset.labelsThrough",
                "labelsManifest.$": "$.dataset.manifestS3Uri", "evaluation.$": "$.evaluation", "promotion.$": "$.promotion",
            },  # fmt: skip
        )
        notify_success = notify(
            "NotifySuccess",
            "new model deployed",
            "$$.Execution.Name",
            "$.evaluation.reason",
            "$.promotion.model",
            "$.promotion.lineageS3Uri",
            template="Retraining {} deployed a new model: {}. Model: {}. Lineage: {}",
        ).next(promoted)

        baselined: sfn.IChainable = scoring.next(baselines) if scoring is not None else baselines
        if baseline_jobs is not None:
            baselined = baselined.next(baseline_jobs)
        if endpoint:
            deployment = (
                baselined
                .next(deploy)
                .next(wait)
                .next(check)
                .next(
                    sfn.Choice(self, "EndpointState")
                    .when(sfn.Condition.string_equals("$.endpoint.state", "updating"), wait)
                    .when(sfn.Condition.string_equals("$.endpoint.state", "deployed"), promote.next(notify_success))
                    .otherwise(notify_rollback)
                )
            )
        else:  # batch only: Promote's parameter update is the deployment
            no_endpoint = sfn.Pass(
                self,
                "NoEndpoint",
                comment="Batch only: the served-model parameter Promote updates is what the next nightly run predicts with",
                # No endpoint config, new or previous: Promote's lineage records them empty.
                result=sfn.Result.from_object({"endpointConfigName": "", "previousEndpointConfigName": ""}),
                result_path="$.deployment",
            )
            deployment = baselined.next(no_endpoint).next(promote).next(notify_success)
        gate: sfn.IChainable = deployment
        if retraining.manual_approval:
            gate = self._approval(retraining.approval_timeout_hours, topic, prefix, deployment, notify_not_promoted, caught)
        definition = run.next(assemble).next(train).next(create_model).next(serving_model).next(score_evaluation).next(evaluate).next(
            sfn.Choice(self, "Better").when(sfn.Condition.boolean_equals("$.evaluation.promote", True), gate).otherwise(notify_not_promoted)
        )

        self.log_group = encrypted_log_group(self, "Logs", key=key, retain=config.retain_data, name=f"/aws/vendedlogs/states/{prefix}-retraining")
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{prefix}-retraining",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(retraining.timeout_hours),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Retrains the model on the original data plus reviewers' labels and redeploys it safely",
        )
        ignore_lint_check(self.state_machine.node.default_child, "W3005", "aws-cdk-lib's StateMachine adds a construct dependency on its role next to the GetAtt.")
        self._grant(stack, prefix, key, pass_roles, processing=bool(baseline_templates))

    def _approval(self, hours: int, topic: sns.ITopic, prefix: str, approved: sfn.IChainable, rejected: sfn.IChainable, caught) -> sfn.IChainable:
        """Publish approve/reject commands with the task token; no answer within ``hours`` rejects."""
        approve = tasks.SnsPublish(
            self,
            "Approve",
            topic=topic,
            subject=f"{prefix} retraining: approval needed",
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            message=sfn.TaskInput.from_json_path_at(
                "States.Format('Retraining {} trained a model that may replace the serving one: {}. Training job: {}. "
                "Approve: aws stepfunctions send-task-success --task-output true --task-token {} "
                "Reject: aws stepfunctions send-task-failure --error Rejected --task-token {} "
                f"(no answer within {hours} h rejects)', $$.Execution.Name, $.evaluation.reason, $.dataset.names.trainingJob, $$.Task.Token, $$.Task.Token)"
            ),
            result_path="$.approval",
            task_timeout=sfn.Timeout.duration(Duration.hours(hours)),
        )
        # The documented reject command sends no --cause: the caught error's Cause may be missing,
        # null or empty, and formatting a missing path would be an uncatchable States.Runtime error.
        # Choice rules are tried in order, so the later ones only see a Cause that is there.
        # A withheld model keeps the gate's figures: the reason says who withheld it and then what the
        # gate found (both figures, the difference, its interval), and `gate` is the whole evaluation,
        # so the notification and the run's output still carry them.
        withheld = lambda name, reason, *paths: sfn.Pass(  # noqa: E731
            self, name, result_path="$.evaluation",
            parameters={"promote": False, "gate.$": "$.evaluation", "reason.$": f"States.Format('not approved ({reason}); the gate: {{}}', {', '.join(paths)}, $.evaluation.reason)"},
        )  # fmt: skip
        with_cause = withheld("ApprovalWithheld", "{}: {}", "$.approval.Error", "$.approval.Cause")
        without_cause = withheld("ApprovalWithheldWithoutCause", "{}", "$.approval.Error")
        without_cause.next(rejected)
        answer = (
            sfn.Choice(self, "ApprovalAnswer")
            .when(sfn.Condition.not_(sfn.Condition.is_present("$.approval.Cause")), without_cause)
            .when(sfn.Condition.is_null("$.approval.Cause"), without_cause)
            .when(sfn.Condition.string_equals("$.approval.Cause", ""), without_cause)
            .otherwise(with_cause.next(rejected))
        )
        approve.add_catch(answer, errors=["Rejected", "States.Timeout"], result_path="$.approval")
        caught(approve)
        return approve.next(approved)

    def _grant(self, stack: Stack, prefix: str, key: kms.IKey, pass_roles: list[iam.IRole], *, processing: bool) -> None:
        """The SageMaker integrations' permissions, on this app's names only, except ListTags,
        which AWS's policy for the ``.sync`` integrations grants on "*".
        https://docs.aws.amazon.com/step-functions/latest/dg/sagemaker-iam.html"""
        sagemaker = lambda kind: stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{prefix}-*")  # noqa: E731
        jobs = {"training": "TrainingJob", **({"processing": "ProcessingJob"} if processing else {}), "transform": "TransformJob"}
        statements = [
            *(
                iam.PolicyStatement(
                    actions=[f"sagemaker:Create{api}", f"sagemaker:Describe{api}", f"sagemaker:Stop{api}", "sagemaker:AddTags"],
                    resources=[sagemaker(f"{kind}-job")],
                )
                for kind, api in jobs.items()
            ),
            iam.PolicyStatement(actions=["sagemaker:ListTags"], resources=["*"]),
            iam.PolicyStatement(actions=["sagemaker:CreateModel", "sagemaker:AddTags"], resources=[sagemaker("model")]),
            iam.PolicyStatement(
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[stack.format_arn(service="events", resource="rule", resource_name=aws_facts.SFN_SAGEMAKER_SYNC_RULES[kind]) for kind in jobs],
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[role.role_arn for role in pass_roles],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            ),
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]),  # the topic's key
        ]
        for statement in statements:
            self.state_machine.add_to_role_policy(statement)
        policy = self.state_machine.role.node.find_child("DefaultPolicy")
        acknowledge_wildcards(
            policy,
            policy.document,
            f"SageMaker jobs and models are named {prefix}-<execution> at run time, so they are granted by that prefix; "
            "sagemaker:ListTags is on * as in AWS's policy for the .sync integrations (sagemaker-iam.html); "
            "X-Ray's trace and log-delivery actions take no resource ARN (aws-cdk-lib grants them); Lambda versions of the step function.",
        )
        acknowledge(policy, "The policy belongs to the state machine's role only and changes with its definition.", "HIPAA.Security-IAMNoInlinePolicy", "NIST.800.53.R5-IAMNoInlinePolicy")

