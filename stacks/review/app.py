"""The open review back end: the reviewers' web app (issue 16), for accounts without Amazon A2I.

    reviewer --(Cognito managed login, authorization code + PKCE)--> ID token
    browser --> CloudFront --/--------> page bucket (origin access control)
                          \\-/api/*---> HTTP API (JWT authorizer on every route) --> API function
                                            --> tasks table, output.json (A2I's format), event

Page and API share one origin, so the page needs no CORS and its content security policy can say
``'self'``. The starter opens one task per review group (a conditional put), the API function lets
reviewers claim, answer and release them, and a completed task becomes ``output.json`` under A2I's
output prefix plus a "Review Task Completed" event that review_results consumes as it does A2I's.

Why the pieces are hand-wired L2s and not AWS Solutions Constructs' CloudFrontToS3: its newest
release (2.105.0) requires aws-cdk.cloud-assembly-schema<55, which the pinned aws-cdk-lib (55.x)
rules out, so pip cannot install both; it also makes four buckets where two do, and logs with the
legacy ``AccessControl`` property (cfn-lint W3045). This construct keeps its shape: origin access
control, logged buckets, a response headers policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsii
from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sns as sns
from constructs import Construct

from lambdas.review.app.completion import COMPLETED_DETAIL_TYPE
from lambdas.review.app.tasks import RETENTION_SECONDS, STATUS_INDEX
from stacks.review.a2i import A2I_OUTPUT_PREFIX
from stacks.shared.compliance import acknowledge, acknowledge_wildcards, drop_redundant_dependency, ignore_lint_check
from stacks.shared.config import AppConfig
from stacks.shared.functions import ACK_INLINE_POLICY, INLINE_POLICY_RULES, AppFunction, Invocation, review_app_layer
from stacks.shared.log_groups import encrypted_log_group

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "lambdas" / "review" / "app" / "site"
PARTIALS = ROOT / "a2i_templates"

# The Cognito group whose members may review; the API function answers 403 to anyone else.
REVIEWERS_GROUP = "reviewers"
# The API's routes (lambdas/review/app/api.py), all under /api/ so CloudFront sends them to the API.
ROUTES: tuple[tuple[apigwv2.HttpMethod, str], ...] = (
    (apigwv2.HttpMethod.GET, "/api/tasks"),
    (apigwv2.HttpMethod.POST, "/api/tasks/next"),
    (apigwv2.HttpMethod.GET, "/api/tasks/{taskId}"),
    (apigwv2.HttpMethod.POST, "/api/tasks/{taskId}/renew"),
    (apigwv2.HttpMethod.POST, "/api/tasks/{taskId}/release"),
    (apigwv2.HttpMethod.POST, "/api/tasks/{taskId}/answers"),
)
# Every route requires one of these scopes in the token: Cognito's access tokens carry the scopes the
# page asked for ("openid email"), its ID tokens carry none, so an ID token is refused (API Gateway:
# "Unless you require ID tokens for API authorization, we recommend that you configure your routes
# to require authorization scopes", http-api-jwt-authorizer).
ROUTE_SCOPES = ("openid",)
# A reviewer's page makes a few requests a minute; this leaves room for dozens at once and stops a
# runaway client (or a stolen token) from running up the function and the table.
API_RATE_LIMIT = 25
API_BURST_LIMIT = 50
# The tasks table: one item per review group (the schema in lambdas/review/app/api.py's docstring).
TASK_KEY = "taskId"
# DynamoDB deletes a task this long after its availability ended (tasks.RETENTION_SECONDS): the
# sweep ends an expired task first, as a failed loop, so none disappears unreported.
TASK_EXPIRY_ATTRIBUTE = "deleteAfter"
# Sweeps tasks whose answers are in but whose completion did not finish (a crash), and ends expired ones.
SWEEP_RATE = Duration.minutes(5)
# HSTS for two years, the preload list's minimum being one.
HSTS_MAX_AGE = Duration.days(730)
# review.mfa -> the user pool's MFA setting (TOTP is the only second factor offered).
MFA_MODES = {"required": cognito.Mfa.REQUIRED, "optional": cognito.Mfa.OPTIONAL, "off": cognito.Mfa.OFF}


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogs:
    """The HTTP API stage's access log settings (aws-cdk-lib takes them as an interface)."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, format: apigw.AccessLogFormat) -> None:
        self._destination, self._format = destination, format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class ReviewersApp(Construct):
    """User pool, tasks table, HTTP API, page bucket and CloudFront distribution of the reviewers' app."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: AppConfig,
        review_bucket: s3.IBucket,
        key: kms.IKey,
        layer: lambda_.ILayerVersion,
        alarm_topic: sns.ITopic,
        event_source: str,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        review, prefix = config.review, config.prefix
        self._review = review
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        # Cognito's prefix domains are global per region: the app's prefix and the account make it
        # ours. The page's CSP names it as a string, so the distribution does not wait for the pool.
        domain_prefix = f"{prefix}-{Aws.ACCOUNT_ID}"
        cognito_origin = f"https://{domain_prefix}.auth.{Aws.REGION}.amazoncognito.com"

        # --- tasks ------------------------------------------------------------------------------
        self.tasks = dynamodb.Table(
            self,
            "Tasks",
            partition_key=dynamodb.Attribute(name=TASK_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            time_to_live_attribute=TASK_EXPIRY_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(point_in_time_recovery_enabled=True),
            deletion_protection=config.retain_data,
            removal_policy=removal,
        )
        self.tasks.add_global_secondary_index(
            index_name=STATUS_INDEX,
            partition_key=dynamodb.Attribute(name="status", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="createdAt", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        acknowledge(
            self.tasks,
            f"Working state of the review, not its record: a task stays until {RETENTION_SECONDS // 86_400} days after its availability "
            "(review.task_availability_seconds) ends, when the TTL deletes it with its audit trail. A completed task's answers are "
            "written to the versioned review bucket as output.json and its outcome to loop-reports/; an expired task's partial answers "
            "are in no output.json (its loop is reported as failed) and exist only here, until that TTL, by design. Point-in-time recovery "
            "(35 days, longer than that retention) restores the table after a bad write or delete; a backup plan would only keep "
            "items past the retention chosen for them.",
            "NIST.800.53.R5-DynamoDBInBackupPlan",
            "HIPAA.Security-DynamoDBInBackupPlan",
        )

        # --- API -------------------------------------------------------------------------------
        common = {"key": key, "layer": layer, "retain_logs": config.retain_data}
        environment = {
            "TASKS_TABLE": self.tasks.table_name,
            "REVIEW_BUCKET": review_bucket.bucket_name,
            "OUTPUT_PREFIX": A2I_OUTPUT_PREFIX,
            "EVENT_SOURCE": event_source,
            "EVENT_BUS_NAME": "default",
            "LEASE_SECONDS": str(review.task_time_limit_seconds),
        }
        self.api_function = AppFunction(
            self,
            "ApiFunction",
            handler="lambdas.review.app.api.handler",
            description="The reviewers' app API: lists, claims, renews, releases and answers review tasks",
            service=f"{prefix}-reviewers-app",
            invocation=Invocation(
                failures=(
                    "Invoked synchronously by the HTTP API for each reviewer request: an error is the request's 5xx "
                    "answer, the page shows it and the reviewer retries; there is no asynchronous invocation to dead-letter."
                ),
                scaling=(
                    f"Invoked only through the HTTP API, whose stage throttle ({API_RATE_LIMIT} requests a second, bursts "
                    f"of {API_BURST_LIMIT}) bounds its concurrency; a reservation would take from the account's pool."
                ),
            ),
            timeout=Duration.seconds(10),
            memory_size=512,
            extra_layers=(review_app_layer(self, "ApiDependencies"),),  # python-liquid: tasks render from a2i_templates/
            environment={
                **environment,
                "REVIEWERS_GROUP": REVIEWERS_GROUP,
                "LABEL_NAMES": json.dumps(list(config.model.label_names)),
                "REVIEW_TEMPLATE": review.template,
            },
            **common,
        )
        self.sweep = AppFunction(
            self,
            "CompletionSweep",
            handler="lambdas.review.app.api.sweep_handler",
            description="Finishes review tasks whose answers are in but whose completion was interrupted",
            service=f"{prefix}-reviewers-app",
            invocation=Invocation.schedule(
                rate=f"every {SWEEP_RATE.to_minutes():.0f} minutes",
                failures="a failed sweep is retried by Lambda twice, and the next sweep finds the same unfinished tasks "
                "again; errors are alarmed.",
            ),
            timeout=Duration.minutes(2),
            environment=environment,
            **common,
        )
        events.Rule(
            self,
            "SweepSchedule",
            description="Finishes answered review tasks whose completion was interrupted",
            schedule=events.Schedule.rate(SWEEP_RATE),
            targets=[targets.LambdaFunction(self.sweep.function, retry_attempts=2)],
        )
        sweep_errors = cloudwatch.Alarm(
            self,
            "SweepErrors",
            alarm_description="The reviewers' app completion sweep raised an error; see its logs. Answered tasks wait for it.",
            metric=self.sweep.function.metric_errors(period=Duration.hours(1), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        sweep_errors.add_alarm_action(cw_actions.SnsAction(alarm_topic))
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        index_arn = f"{self.tasks.table_arn}/index/{STATUS_INDEX}"
        for function, actions in (
            (self.api_function, ["dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"]),
            (self.sweep, ["dynamodb:Query", "dynamodb:UpdateItem"]),
        ):
            function.allow(actions, [self.tasks.table_arn, index_arn])
            function.allow(["s3:PutObject"], [review_bucket.arn_for_objects(f"{A2I_OUTPUT_PREFIX}/*")])
            function.allow(["kms:GenerateDataKey"], [key.key_arn])
            default_bus.grant_put_events_to(function.role)
            function.acknowledge_wildcards(
                f"output.json goes under per-task keys below {A2I_OUTPUT_PREFIX}/ (A2I's layout, named after the task), "
                "which exist only once a task is answered."
            )

        # Routes are added once the page's app client exists (below): the authorizer names it.
        self.api = apigwv2.HttpApi(
            self,
            "Api",
            api_name=f"{prefix}-reviewers",
            description="The reviewers' app API (behind CloudFront's /api/*)",
            create_default_stage=False,
        )
        access_logs = encrypted_log_group(self, "ApiAccessLogs", key=key, retain=config.retain_data)
        self.stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=API_RATE_LIMIT, burst_limit=API_BURST_LIMIT),
            access_log_settings=_AccessLogs(
                apigwv2.LogGroupLogDestination(access_logs),
                apigw.AccessLogFormat.custom(
                    json.dumps(
                        {
                            "requestId": "$context.requestId",
                            "time": "$context.requestTime",
                            "ip": "$context.identity.sourceIp",
                            "userAgent": "$context.identity.userAgent",
                            "route": "$context.routeKey",
                            "status": "$context.status",
                            "responseLength": "$context.responseLength",
                            "reviewer": "$context.authorizer.claims.sub",
                            "authorizerError": "$context.authorizer.error",
                            "integrationError": "$context.integrationErrorMessage",
                        },
                        separators=(",", ":"),
                    )
                ),
            ),
        )

        # --- the page ----------------------------------------------------------------------------
        # S3-managed encryption: the bucket holds only the page's public code (HTML, script, style)
        # and config.json (the public client's ID and URLs): nothing a key would protect. SSE-KMS with
        # the app's key would need the key policy (in the storage stack) to name this stack's
        # distribution, a dependency cycle between the stacks.
        self.logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            # CloudFront's standard logs are written with an ACL: the bucket must accept them.
            # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logging-legacy-s3.html
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            versioned=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(90))],
            removal_policy=removal,
            auto_delete_objects=not config.retain_data,
        )
        self.site = s3.Bucket(
            self,
            "Site",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="site/",
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
            removal_policy=removal,
            auto_delete_objects=not config.retain_data,
        )
        for bucket, reason in (
            (
                self.site,
                "Holds only the reviewers' page (static HTML, script and style that every visitor downloads) and config.json "
                "with the public app client's ID and URLs: nothing a customer key would protect. The app's key would also "
                "need a key-policy statement in the storage stack naming this stack's distribution (a cycle between the stacks).",
            ),
            (
                self.logs,
                "It receives the page bucket's S3 server access logs, which S3 delivers only to buckets with SSE-S3 default "
                "encryption (https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html), and "
                "the distribution's CloudFront standard logs, which CloudFront's log delivery writes with an ACL; with SSE-S3 "
                "that writer needs no grant on the app's key. Neither holds model data or answers: request lines (path, time, client address) for the page and the API.",
            ),
        ):
            acknowledge(bucket, reason, "HIPAA.Security-S3DefaultEncryptionKMS", "NIST.800.53.R5-S3DefaultEncryptionKMS")
            acknowledge(
                bucket,
                "Single-region by design, as the app's data buckets: the page is redeployed from the repository by cdk deploy, "
                "and its access logs are versioned.",
                "HIPAA.Security-S3BucketReplicationEnabled",
                "NIST.800.53.R5-S3BucketReplicationEnabled",
            )

        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment=f"{prefix} reviewers' app: HSTS, CSP without inline script, no framing",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(cognito_origin), override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=HSTS_MAX_AGE, include_subdomains=True, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(frame_option=cloudfront.HeadersFrameOption.DENY, override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True),
            ),
        )
        api_origin = origins.HttpOrigin(
            f"{self.api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
            origin_ssl_protocols=[cloudfront.OriginSslPolicy.TLS_V1_2],
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{prefix} reviewers' app",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.site),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
            ),
            additional_behaviors={
                "/api/*": cloudfront.BehaviorOptions(
                    origin=api_origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    # Nothing of the API is cached. With caching disabled, the AllViewerExceptHostHeader
                    # policy forwards the viewer's Authorization header (AWS re:Post knowledge center,
                    # "cloudfront-authorization-header", current version); the Host stays API Gateway's
                    # own, without which it answers 403.
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                    response_headers_policy=headers,
                ),
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
        )
        self._acknowledge_distribution()
        self.url = f"https://{self.distribution.distribution_domain_name}"

        # --- reviewers: user pool, group, managed login ---------------------------------------
        self.user_pool = cognito.UserPool(
            self,
            "Reviewers",
            user_pool_name=f"{prefix}-reviewers",
            # Only an administrator creates reviewers (README: add a reviewer); they sign in with their e-mail.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            standard_attributes=cognito.StandardAttributes(email=cognito.StandardAttribute(required=True, mutable=True)),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            mfa=MFA_MODES[review.mfa],
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False) if review.mfa != "off" else None,
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            # Threat protection (compromised-credential checks, adaptive authentication) enforced:
            # the Plus feature plan, billed per monthly active user, a few cents for a review team.
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            user_invitation=cognito.UserInvitationConfig(
                email_subject=f"You are invited to review predictions ({prefix})",
                email_body=(
                    "You can now review the model's predictions. Sign in at " + self.url + "/ with the user name "
                    "{username} and the temporary password {####}; you will choose your own password"
                    + (" and set up an authenticator app." if review.mfa == "required" else ".")
                ),
            ),
            deletion_protection=config.retain_data,
            removal_policy=removal,
        )
        if review.mfa != "required":
            acknowledge(
                self.user_pool,
                f"review.mfa is '{review.mfa}' in this environment's configuration (the default, 'required', turns TOTP MFA on "
                "for every reviewer); the owner chose it, and threat protection still runs on every sign-in.",
                "AwsSolutions-COG2",
            )
        self.group = cognito.UserPoolGroup(
            self, "ReviewersGroup", user_pool=self.user_pool, group_name=REVIEWERS_GROUP, description="May claim and answer review tasks"
        )
        self.domain = self.user_pool.add_domain(
            "SignIn",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=domain_prefix),
            managed_login_version=cognito.ManagedLoginVersion.NEWER_MANAGED_LOGIN,
        )

        # The page's app client: a public client (no secret) with the authorization-code flow, which
        # the page runs with PKCE; no implicit flow, tokens back only to the page itself.
        self.client = self.user_pool.add_client(
            "Page",
            user_pool_client_name=f"{prefix}-reviewers-page",
            generate_secret=False,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True, implicit_code_grant=False, client_credentials=False),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[f"{self.url}/"],
                logout_urls=[f"{self.url}/"],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.hours(12),
        )
        # Sign-in is managed login's only: no password or SRP flow straight from the client ID.
        self.client.node.default_child.add_property_override("ExplicitAuthFlows", ["ALLOW_REFRESH_TOKEN_AUTH"])
        # Managed login serves an app client's pages once the client has a style (Cognito's own here).
        cognito.CfnManagedLoginBranding(
            self, "SignInStyle", user_pool_id=self.user_pool.user_pool_id, client_id=self.client.user_pool_client_id, use_cognito_provided_values=True
        )
        self.sign_in_url = self.url + "/"

        # Every route behind the JWT authorizer: a token of this pool, issued to the page's client.
        self.authorizer = authorizers.HttpUserPoolAuthorizer("Reviewers", self.user_pool, user_pool_clients=[self.client])
        integration = integrations.HttpLambdaIntegration("Api", self.api_function.function)
        for method, path in ROUTES:
            self.api.add_routes(path=path, methods=[method], integration=integration, authorizer=self.authorizer, authorization_scopes=list(ROUTE_SCOPES))

        self._deploy_page(config, cognito_origin, key)

        CfnOutput(stack, "ReviewersAppUrl", value=self.sign_in_url, description="The reviewers' app: sign in here (Cognito managed login)")
        CfnOutput(stack, "ReviewersUserPoolId", value=self.user_pool.user_pool_id, description="Cognito user pool of the reviewers (README: add a reviewer)")
        CfnOutput(stack, "ReviewTasksTableName", value=self.tasks.table_name, description="DynamoDB table of the review tasks")

    def starter_environment(self) -> dict[str, str]:
        """What the human-loop starter needs to open tasks here instead of A2I human loops."""
        return {
            "REVIEW_BACKEND": "open",
            "TASKS_TABLE": self.tasks.table_name,
            "REVIEWERS_PER_TASK": str(self._review.task_count),
            "TASK_AVAILABILITY_SECONDS": str(self._review.task_availability_seconds),
        }

    def allow_starting(self, starter: AppFunction) -> None:
        """The starter opens a task with one conditional PutItem (a replayed group is one task)."""
        starter.allow(["dynamodb:PutItem"], [self.tasks.table_arn])

    def _acknowledge_distribution(self) -> None:
        distribution = self.distribution
        acknowledge(
            distribution,
            "The reviewers' app serves a small team that signs in through Cognito (threat protection enforced, MFA per "
            "review.mfa); every API route checks a token of the pool and the stage is throttled, and the page is static "
            "files. A WAF web ACL for CloudFront must be created in us-east-1 (a second stack, whatever the app's region) "
            "and is billed monthly per ACL and rule; add one with web_acl_id where the page faces more than a review team.",
            "AwsSolutions-CFR2",
        )
        acknowledge(
            distribution,
            "Reviewers work from anywhere; who may use the app is decided by the Cognito sign-in, not by country.",
            "AwsSolutions-CFR1",
        )
        acknowledge(
            distribution,
            "The distribution uses CloudFront's default *.cloudfront.net certificate (the app has no domain of its own), "
            "whose security policy CloudFront fixes at TLSv1 and cannot be raised; browsers negotiate TLS 1.2 or 1.3 "
            "anyway, HSTS keeps them on HTTPS, and to the API origin CloudFront uses TLS 1.2 only. With a custom domain and "
            "an ACM certificate, set minimum_protocol_version to TLSv1.2_2021.",
            "AwsSolutions-CFR4",
        )

    def _deploy_page(self, config: AppConfig, cognito_origin: str, key: kms.IKey) -> None:
        """The site files, the partials' style sheets and a generated config.json, into the page bucket.

        As stacks/serving/bundled_model.py: the copy handler gets its own role whose policy CDK cannot
        extend, and nothing is pruned or deleted (a retried copy only writes the same files again).
        """
        log_group = encrypted_log_group(self, "DeploymentLogs", key=key, retain=config.retain_data)
        role = self.deployment_role = iam.Role(
            self, "DeployRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description="Copies the reviewers' page into its bucket (BucketDeployment)"
        )
        log_group.grant_write(role)
        files = s3_assets.Asset(self, "SiteFiles", path=str(SITE))
        partials = s3_assets.Asset(self, "PartialStyles", path=str(PARTIALS), exclude=["*", "!partials", "!partials/*.css"])
        page_config = {
            "domain": cognito_origin,
            "clientId": self.client.user_pool_client_id,
            "redirectUri": self.sign_in_url,
            "scopes": "openid email",
        }
        self.deployment = s3deploy.BucketDeployment(
            self,
            "Page",
            sources=[
                s3deploy.Source.bucket(files.bucket, files.s3_object_key),
                s3deploy.Source.bucket(partials.bucket, partials.s3_object_key),
                s3deploy.Source.json_data("config.json", page_config),
            ],
            destination_bucket=self.site,
            # Browsers revalidate (a cheap 304): a redeployed script or config.json is seen at once.
            cache_control=[s3deploy.CacheControl.no_cache()],
            prune=False,
            retain_on_delete=True,
            distribution=self.distribution,
            distribution_paths=["/*"],
            log_group=log_group,
            role=role.without_policy_updates(),
        )
        generated = [c for c in self.deployment.node.children if isinstance(c, s3_assets.Asset)]
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[a.bucket.arn_for_objects(a.s3_object_key) for a in (files, partials, *generated)])
        )
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.site.bucket_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.site.arn_for_objects("*")]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudfront:CreateInvalidation", "cloudfront:GetInvalidation"],
                resources=[Stack.of(self).format_arn(service="cloudfront", region="", resource="distribution", resource_name=self.distribution.distribution_id)],
            )
        )
        # The handler's role gets its policy here, not from the library, so nothing else makes the copy wait for it.
        policy = role.node.find_child("DefaultPolicy")
        self.deployment.node.add_dependency(policy)
        acknowledge_wildcards(
            policy,
            policy.document,
            "The copy writes (s3:PutObject, no delete) the page's files into the page bucket, which holds nothing else; "
            "their names come from the repository's site folder.",
        )
        acknowledge(policy, ACK_INLINE_POLICY, *INLINE_POLICY_RULES)
        stack = Stack.of(self)
        handler = next(c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        ignore_lint_check(handler.node.default_child, "W3005", "aws-cdk-lib's Function adds a construct dependency on its role next to the GetAtt.")
        acknowledge(
            handler,
            "aws-cdk-lib's BucketDeployment handler (its runtime is the library's), behind the library's custom-resource "
            "provider: CloudFormation invokes it only while deploying this stack, to copy the reviewers' page; a failure is "
            "reported to CloudFormation and fails the deployment, so there is nothing to dead-letter, and it runs once per "
            "deployment, so nothing to reserve concurrency for.",
            "AwsSolutions-L1",
            "HIPAA.Security-LambdaConcurrency",
            "HIPAA.Security-LambdaDLQ",
            "NIST.800.53.R5-LambdaConcurrency",
            "NIST.800.53.R5-LambdaDLQ",
        )
        acknowledge(
            handler,
            "The handler calls only S3 (its source assets and the page bucket) and CloudFront (the invalidation) over TLS "
            "with IAM auth and reaches no resource inside a VPC.",
            "HIPAA.Security-LambdaInsideVPC",
            "NIST.800.53.R5-LambdaInsideVPC",
        )
        provider = stack.node.try_find_child("Custom::S3AutoDeleteObjectsCustomResourceProvider")
        if provider is not None:
            drop_redundant_dependency(provider.node.find_child("Handler"), provider.node.find_child("Role"))


def content_security_policy(cognito_origin: str) -> str:
    """The page's CSP: its own script and style only (no inline script), tokens from Cognito, no framing."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src 'self' {cognito_origin}",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        )
    )
