"""Human review stack with the open back end (``review.backend: open``, the default): the reviewers'
app's user pool, API, page and tasks table, and what the switch of back end changes."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from aws_cdk.assertions import Template

from lambdas.review.app import api
from lambdas.review.app.completion import COMPLETED_DETAIL_TYPE
from lambdas.shared import aws
from stacks.review.app import PARTIALS, ROUTES
from stacks.shared.compliance import flatten_reference, wildcard_findings
from tests.conftest import SynthesisedApp, build_app
from tests.lambdas.aws_env import REGION
from tests.lambdas.conftest import mocked_aws  # noqa: F401 (a fixture: moto for the rule's delivery test)
from tests.lambdas.review.app.conftest import world  # noqa: F401 (a fixture: the reviewers' app over moto)
from tests.stacks.review.test_stack import a2i_environment
from tests.stacks.test_snapshots import normalised

OTHER_STACKS = ("storage", "serving", "monitoring", "retraining", "operations")


@pytest.fixture(scope="module")
def template(dev_app) -> Template:
    return dev_app.template("review")


def _one(template: Template, kind: str) -> tuple[str, dict]:
    [(logical_id, resource)] = template.find_resources(kind).items()
    return logical_id, resource


def _logical_id(built: SynthesisedApp, construct) -> str:
    return built.review.get_logical_id(getattr(construct, "node").default_child)


def _statements(built: SynthesisedApp, role) -> list[dict]:
    policy = built.review.get_logical_id(role.node.find_child("DefaultPolicy").node.default_child)
    return built.template_json("review")["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]


def _granted(statements: list[dict]) -> dict[str, list[str]]:
    """action -> the resources (flattened) it is allowed on."""
    by_action: dict[str, list[str]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = [statement["Resource"]] if not isinstance(statement["Resource"], list) else statement["Resource"]
        for action in actions:
            by_action.setdefault(action, []).extend(flatten_reference(r) for r in resources)
    return by_action


# --- the switch --------------------------------------------------------------------------------


def test_the_default_back_end_deploys_the_reviewers_app_and_no_a2i_resource(dev_app, template: Template) -> None:
    assert dev_app.review.human_task is None and dev_app.review.reviewers_app is not None
    resources = template.to_json()["Resources"].values()
    types = {r["Type"] for r in resources}
    assert not any(t.startswith("AWS::SageMaker::") for t in types)
    assert "Custom::A2IFlowDefinition" not in types
    assert "WorkteamArn" not in template.to_json().get("Parameters", {})
    for kind in ("AWS::Cognito::UserPool", "AWS::ApiGatewayV2::Api", "AWS::CloudFront::Distribution"):
        assert kind in types
    # No role may start A2I loops, and none is passed to SageMaker.
    text = json.dumps(template.to_json())
    assert "sagemaker:StartHumanLoop" not in text and "FLOW_DEFINITION_ARN" not in text


def test_switching_back_ends_changes_only_the_review_stack(tmp_path, dev_app) -> None:
    """The other stacks name the review stage only by what both back ends share (queues, event source)."""
    a2i = build_app(tmp_path, environment=a2i_environment())
    for stack in OTHER_STACKS:  # asset hashes aside: this suite's files may change between two synths
        assert normalised(a2i.template_json(stack)) == normalised(dev_app.template_json(stack)), stack
    assert a2i.template_json("review") != dev_app.template_json("review")
    assert a2i.review.human_task is not None and a2i.review.reviewers_app is None


def test_the_starter_opens_tasks_in_the_table_with_one_conditional_put(dev_app) -> None:
    pipeline, app = dev_app.review.pipeline, dev_app.review.reviewers_app
    starter = dev_app.template_json("review")["Resources"][_logical_id(dev_app, pipeline.starter.function)]["Properties"]
    variables = starter["Environment"]["Variables"]
    assert variables["REVIEW_BACKEND"] == "open"
    assert variables["TASKS_TABLE"] == {"Ref": _logical_id(dev_app, app.tasks)}
    assert (variables["REVIEWERS_PER_TASK"], variables["TASK_AVAILABILITY_SECONDS"], variables["LOOP_PREFIX"]) == ("1", "86400", "mlloop-dev")
    assert "FLOW_DEFINITION_ARN" not in variables
    granted = _granted(_statements(dev_app, pipeline.starter.role))
    table = f"<{_logical_id(dev_app, app.tasks)}.Arn>"
    budget = f"<{_logical_id(dev_app, pipeline.budget_table)}.Arn>"
    assert sorted(granted["dynamodb:PutItem"]) == sorted([table, budget])  # the task, and the day's loop count
    assert not any(a.startswith("sagemaker:Start") for a in granted)
    assert [a for a, rs in granted.items() if any(r.startswith(table) for r in rs)] == ["dynamodb:PutItem"]


def _rule_for(template: Template, detail_type: str) -> dict:
    [rule] = [r["Properties"] for r in template.find_resources("AWS::Events::Rule").values()
              if r["Properties"].get("EventPattern", {}).get("detail-type") == [detail_type]]
    return rule


def test_completed_tasks_reach_the_results_queue_like_finished_a2i_loops(dev_app, template: Template) -> None:
    from moto.events.models import EventPattern

    results_queue = {"Fn::GetAtt": [_logical_id(dev_app, dev_app.review.pipeline.results_queue.queue), "Arn"]}
    completed = _rule_for(template, COMPLETED_DETAIL_TYPE)
    a2i = _rule_for(template, "SageMaker A2I HumanLoop Status Change")  # loops opened before a switch still finish
    for rule in (completed, a2i):
        assert [t["Arn"] for t in rule["Targets"]] == [results_queue]
    pattern = EventPattern.load(json.dumps(completed["EventPattern"]))

    def event(source: str = "mlloop.review", detail_type: str = COMPLETED_DETAIL_TYPE, status: str = "Completed") -> dict:
        # Shaped as lambdas/review/app/completion.py publishes it.
        return {"source": source, "detail-type": detail_type,
                "detail": {"humanLoopName": "mlloop-dev-0a1b", "humanLoopStatus": status, "humanLoopOutput": {"outputS3Uri": "s3://b/a2i-output/x/output.json"}}}

    assert pattern.matches_event(event())
    assert pattern.matches_event(event(status="Failed"))  # an expired task (completion.expire): recorded, never dropped
    assert not pattern.matches_event(event(source="other.review"))
    assert not pattern.matches_event(event(detail_type="Labels Available"))  # the stage's other event, same source
    assert not pattern.matches_event(event(status="InProgress"))


def test_every_status_the_app_announces_reaches_the_loop_report_through_the_synthesised_rule(template: Template, world, monkeypatch) -> None:
    """The real events of a completed and of an expired task (completion.complete and .expire, through
    the API and the sweep) go through the synthesised rule into a queue (moto EventBridge), and
    review_results' handler turns each message it gets into the loop's report."""
    from lambdas.review.app import completion
    from lambdas.review.results import handler as results_handler
    from tests.lambdas.aws_env import LambdaContext, drain, sqs_event
    from tests.lambdas.review.app.conftest import ENV, agree_all, call, task_input

    rule = _rule_for(template, COMPLETED_DETAIL_TYPE)
    assert rule["EventPattern"]["source"] == [ENV["EVENT_SOURCE"]]  # the dev app's source is the one the world's app puts
    sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
    queues = {name: sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("loop-results", "loop-results-dlq")}
    target = sqs.get_queue_attributes(QueueUrl=queues["loop-results"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="ReviewTaskCompleted", EventPattern=json.dumps(rule["EventPattern"]))
    events.put_targets(Rule="ReviewTaskCompleted", Targets=[{"Id": "results", "Arn": target}])

    world.tasks.put("answered", task_input(), 1, 3600)
    assert call("POST /api/tasks/next")[1]["task"]["taskId"] == "answered"
    assert call("POST /api/tasks/{taskId}/answers", task_id="answered", body={"answers": agree_all()})[1]["completed"] is True
    world.tasks.put("unfinished", task_input(), 1, 60)  # nobody takes it in time
    world.clock.advance(61)
    assert completion.sweep(world.tasks, aws.client("s3"), aws.client("events"), api.completion_settings()) == (1, [])
    put = world.events()
    assert sorted(e["detail"]["humanLoopStatus"] for e in put) == sorted(completion.ANNOUNCED_STATUSES)

    delivered = drain(queues["loop-results"])
    assert sorted(json.loads(m["Body"])["detail"]["humanLoopStatus"] for m in delivered) == ["Completed", "Failed"]

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="labels", CreateBucketConfiguration={"LocationConstraint": REGION})
    for name, value in {"LABELS_BUCKET": "labels", "REPORT_BUCKET": ENV["REVIEW_BUCKET"], "DEAD_LETTER_QUEUE_URL": queues["loop-results-dlq"]}.items():
        monkeypatch.setenv(name, value)
    results_handler.settings.cache_clear()
    try:
        for message in delivered:
            assert results_handler.handler(sqs_event(message["Body"]), LambdaContext()) == {"batchItemFailures": []}
    finally:
        results_handler.settings.cache_clear()
    assert drain(queues["loop-results-dlq"]) == []
    report = lambda loop: json.loads(s3.get_object(Bucket=ENV["REVIEW_BUCKET"], Key=f"loop-reports/{loop}.json")["Body"].read())  # noqa: E731
    failed = report("unfinished")
    assert (failed["status"], failed["humanLoopName"]) == ("Failed", "unfinished")
    assert failed["failureReason"].startswith("the task expired: 0 of 1 reviewer(s) answered")
    completed = report("answered")
    assert completed["status"] == "Completed" and [r["decision"] for r in completed["rows"]] == ["single reviewer"] * 3
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="labels", Prefix="training-rows/")["Contents"]] == ["training-rows/answered.csv"]


# --- the API -------------------------------------------------------------------------------------


def test_every_route_is_behind_the_jwt_authorizer_of_the_reviewers_pool(dev_app, template: Template) -> None:
    app = dev_app.review.reviewers_app
    routes = template.find_resources("AWS::ApiGatewayV2::Route")
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == {f"{m.value} {p}" for m, p in ROUTES}
    authorizer_id, authorizer = _one(template, "AWS::ApiGatewayV2::Authorizer")
    for route in routes.values():
        assert route["Properties"]["AuthorizationType"] == "JWT"
        assert route["Properties"]["AuthorizerId"] == {"Ref": authorizer_id}
        assert route["Properties"]["AuthorizationScopes"] == ["openid"]  # access tokens only: an ID token has no scope
    props = authorizer["Properties"]
    assert (props["AuthorizerType"], props["IdentitySource"]) == ("JWT", ["$request.header.Authorization"])
    assert props["JwtConfiguration"]["Audience"] == [{"Ref": _logical_id(dev_app, app.client)}]
    assert flatten_reference(props["JwtConfiguration"]["Issuer"]) == f"https://cognito-idp.<AWS::Region>.amazonaws.com/<{_logical_id(dev_app, app.user_pool)}>"
    # Every route leads to the one API function, through one payload-v2 Lambda integration.
    _, integration = _one(template, "AWS::ApiGatewayV2::Integration")
    assert integration["Properties"]["PayloadFormatVersion"] == "2.0"
    assert integration["Properties"]["IntegrationUri"] == {"Fn::GetAtt": [_logical_id(dev_app, app.api_function.function), "Arn"]}


def test_the_stage_is_throttled_and_access_logged_with_retention(dev_app, template: Template) -> None:
    _, stage = _one(template, "AWS::ApiGatewayV2::Stage")
    props = stage["Properties"]
    assert (props["StageName"], props["AutoDeploy"]) == ("$default", True)
    assert props["DefaultRouteSettings"] == {"ThrottlingBurstLimit": 50, "ThrottlingRateLimit": 25}
    log_group = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
    logs = template.to_json()["Resources"][log_group]["Properties"]
    assert logs["RetentionInDays"] == 30 and "KmsKeyId" in logs
    fields = json.loads(props["AccessLogSettings"]["Format"])
    assert fields["requestId"] == "$context.requestId" and fields["reviewer"] == "$context.authorizer.claims.sub"


def test_the_api_function_carries_the_templates_and_python_liquid(dev_app, template: Template) -> None:
    """It renders tasks from a2i_templates/ (lambdas/review/app/render.py) with python-liquid, its own layer."""
    app = dev_app.review.reviewers_app
    layer = _logical_id(dev_app, app.node.find_child("ApiDependencies"))
    functions = {k: v["Properties"] for k, v in template.find_resources("AWS::Lambda::Function").items() if "Layers" in v["Properties"]}
    with_liquid = [k for k, props in functions.items() if {"Ref": layer} in props["Layers"]]
    assert with_liquid == [_logical_id(dev_app, app.api_function.function)]
    code = Path(dev_app.app.outdir) / f"asset.{functions[with_liquid[0]]['Code']['S3Key'].removesuffix('.zip')}"
    assert (code / "lambdas" / "review" / "app" / "render.py").is_file()
    assert (code / "a2i_templates" / "low_confidence.liquid.html").is_file() and (code / "a2i_templates" / "partials" / "record.css").is_file()
    assert not list(code.rglob("requirements.txt"))


def test_the_api_function_may_touch_only_the_table_the_output_prefix_and_the_default_bus(dev_app) -> None:
    app = dev_app.review.reviewers_app
    table = f"<{_logical_id(dev_app, app.tasks)}.Arn>"
    variables = dev_app.template_json("review")["Resources"][_logical_id(dev_app, app.api_function.function)]["Properties"]["Environment"]["Variables"]
    assert (variables["OUTPUT_PREFIX"], variables["EVENT_SOURCE"], variables["REVIEWERS_GROUP"], variables["LEASE_SECONDS"]) == ("a2i-output", "mlloop.review", "reviewers", "3600")
    for function, table_actions in ((app.api_function, {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"}), (app.sweep, {"dynamodb:Query", "dynamodb:UpdateItem"})):
        statements = _statements(dev_app, function.role)
        granted = _granted(statements)
        assert {a for a in granted if a.startswith("dynamodb:")} == table_actions
        for action in table_actions:
            assert granted[action] == [table, f"{table}/index/byStatus"]
        assert granted["s3:PutObject"][0].endswith("/a2i-output/*") and len(granted["s3:PutObject"]) == 1
        assert granted["events:PutEvents"] == ["arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:event-bus/default"]
        assert not any(a.startswith(("sagemaker:", "s3:GetObject", "s3:Delete")) for a in granted)
        assert [f.split("}}", 1)[-1] for f in wildcard_findings(statements) if f.startswith("Resource::")] == ["/a2i-output/*"]


# --- reviewers: Cognito ------------------------------------------------------------------------


def test_reviewers_are_created_by_an_administrator_with_totp_mfa_and_a_strong_password(dev_app, template: Template) -> None:
    _, pool = _one(template, "AWS::Cognito::UserPool")
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert (props["MfaConfiguration"], props["EnabledMfas"]) == ("ON", ["SOFTWARE_TOKEN_MFA"])
    assert props["Policies"]["PasswordPolicy"] == {
        "MinimumLength": 14, "RequireLowercase": True, "RequireUppercase": True, "RequireNumbers": True, "RequireSymbols": True, "TemporaryPasswordValidityDays": 3,
    }  # fmt: skip
    assert props["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"} and props["UserPoolTier"] == "PLUS"
    assert props["UsernameAttributes"] == ["email"]
    # The invitation (admin-create-user) carries the page's address, the user name and the temporary password.
    before, distribution, after = props["AdminCreateUserConfig"]["InviteMessageTemplate"]["EmailMessage"]["Fn::Join"][1]
    assert before.endswith("Sign in at https://") and after.startswith("/ ")
    assert distribution == {"Fn::GetAtt": [_logical_id(dev_app, dev_app.review.reviewers_app.distribution), "DomainName"]}
    assert "{username}" in after and "{####}" in after
    _, group = _one(template, "AWS::Cognito::UserPoolGroup")
    assert group["Properties"]["GroupName"] == "reviewers"


def test_the_page_signs_in_with_the_code_flow_as_a_public_client_through_managed_login(dev_app, template: Template) -> None:
    app = dev_app.review.reviewers_app
    _, client = _one(template, "AWS::Cognito::UserPoolClient")
    props = client["Properties"]
    assert props["AllowedOAuthFlows"] == ["code"] and props["AllowedOAuthFlowsUserPoolClient"] is True
    assert props["GenerateSecret"] is False  # a public client: the page proves itself with PKCE
    assert props["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"] and props["SupportedIdentityProviders"] == ["COGNITO"]
    page = f"https://<{_logical_id(dev_app, app.distribution)}.DomainName>/"
    assert [flatten_reference(u) for u in props["CallbackURLs"]] == [page] == [flatten_reference(u) for u in props["LogoutURLs"]]
    _, domain = _one(template, "AWS::Cognito::UserPoolDomain")
    assert flatten_reference(domain["Properties"]["Domain"]) == "mlloop-dev-<AWS::AccountId>" and domain["Properties"]["ManagedLoginVersion"] == 2
    _, style = _one(template, "AWS::Cognito::ManagedLoginBranding")
    assert style["Properties"]["ClientId"] == {"Ref": _logical_id(dev_app, app.client)} and style["Properties"]["UseCognitoProvidedValues"] is True
    assert flatten_reference(template.to_json()["Outputs"]["ReviewersAppUrl"]["Value"]) == page


@pytest.mark.parametrize(("mfa", "expected"), [("optional", ("OPTIONAL", ["SOFTWARE_TOKEN_MFA"])), ("off", ("OFF", None))])
def test_mfa_follows_the_configuration(tmp_path, dev_app, mfa: str, expected: tuple) -> None:
    environment = json.loads(json.dumps(dev_app.app.node.try_get_context("environments")["dev"]))
    environment.setdefault("review", {})["mfa"] = mfa
    built = build_app(tmp_path, environment=environment)
    built.app.synth()  # the rule packs pass: AwsSolutions-COG2 is acknowledged with the configured value
    _, pool = _one(built.template("review"), "AWS::Cognito::UserPool")
    assert (pool["Properties"]["MfaConfiguration"], pool["Properties"].get("EnabledMfas")) == expected


# --- the page ----------------------------------------------------------------------------------


def test_page_and_api_share_one_https_origin_with_origin_access_control(dev_app, template: Template) -> None:
    app = dev_app.review.reviewers_app
    _, distribution = _one(template, "AWS::CloudFront::Distribution")
    config = distribution["Properties"]["DistributionConfig"]
    assert config["DefaultRootObject"] == "index.html"
    origins = {o["Id"]: o for o in config["Origins"]}
    site = origins[config["DefaultCacheBehavior"]["TargetOriginId"]]
    assert site["DomainName"] == {"Fn::GetAtt": [_logical_id(dev_app, app.site), "RegionalDomainName"]}
    assert "OriginAccessControlId" in site and config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    [api] = config["CacheBehaviors"]
    assert api["PathPattern"] == "/api/*" and api["ViewerProtocolPolicy"] == "https-only"
    assert api["CachePolicyId"] == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"  # Managed-CachingDisabled
    assert api["OriginRequestPolicyId"] == "b689b0a8-53d0-40ab-baf2-68738e2966ac"  # Managed-AllViewerExceptHostHeader
    api_origin = origins[api["TargetOriginId"]]
    assert flatten_reference(api_origin["DomainName"]) == f"<{_logical_id(dev_app, app.api)}>.execute-api.<AWS::Region>.<AWS::URLSuffix>"
    assert api_origin["CustomOriginConfig"] == {"OriginProtocolPolicy": "https-only", "OriginSSLProtocols": ["TLSv1.2"]}
    assert config["Logging"]["Bucket"] == {"Fn::GetAtt": [_logical_id(dev_app, app.logs), "RegionalDomainName"]}
    # Only CloudFront, for this distribution, reads the page bucket; nothing without TLS.
    policy = template.to_json()["Resources"][_logical_id(dev_app, app.site.policy)]["Properties"]["PolicyDocument"]["Statement"]
    [read] = [s for s in policy if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}]
    assert read["Action"] == "s3:GetObject"
    assert flatten_reference(read["Condition"]["StringEquals"]["AWS:SourceArn"]).endswith(f":distribution/<{_logical_id(dev_app, app.distribution)}>")
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    bucket = template.to_json()["Resources"][_logical_id(dev_app, app.site)]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_every_response_carries_hsts_a_csp_without_inline_script_and_no_framing(dev_app, template: Template) -> None:
    headers_id, headers = _one(template, "AWS::CloudFront::ResponseHeadersPolicy")
    security = headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    csp = flatten_reference(security["ContentSecurityPolicy"]["ContentSecurityPolicy"])
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert directives["connect-src"] == "'self' https://mlloop-dev-<AWS::AccountId>.auth.<AWS::Region>.amazoncognito.com"
    assert "unsafe" not in csp
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31_536_000 and security["StrictTransportSecurity"]["IncludeSubdomains"]
    assert security["ContentTypeOptions"] == {"Override": True} and security["FrameOptions"]["FrameOption"] == "DENY"
    assert security["ReferrerPolicy"]["ReferrerPolicy"] == "no-referrer"
    assert all(v["Override"] for v in security.values())
    config = template.find_resources("AWS::CloudFront::Distribution").popitem()[1]["Properties"]["DistributionConfig"]
    for behavior in (config["DefaultCacheBehavior"], *config["CacheBehaviors"]):
        assert behavior["ResponseHeadersPolicyId"] == {"Ref": headers_id}


def test_the_page_is_copied_with_a_generated_config_and_without_deleting(dev_app, template: Template) -> None:
    app = dev_app.review.reviewers_app
    [deployment] = template.find_resources("Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert (props["Prune"], props["RetainOnDelete"]) == (False, True)
    assert props["SystemMetadata"] == {"cache-control": "no-cache"}  # a redeployed page reaches browsers at once
    assert props["DestinationBucketName"] == {"Ref": _logical_id(dev_app, app.site)}
    assert props["DistributionId"] == {"Ref": _logical_id(dev_app, app.distribution)} and props["DistributionPaths"] == ["/*"]
    markers = {flatten_reference(v) for m in props["SourceMarkers"] for v in m.values()}
    assert markers == {
        '"https://mlloop-dev-<AWS::AccountId>.auth.<AWS::Region>.amazoncognito.com"',
        f'"<{_logical_id(dev_app, app.client)}>"',
        f'"https://<{_logical_id(dev_app, app.distribution)}.DomainName>/"',
    }
    # The style sheets the task's partials link, and nothing else of a2i_templates/.
    [partials] = [c for c in app.node.children if c.node.id == "PartialStyles"]
    folder = Path(dev_app.app.outdir) / partials.asset_path
    staged = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert staged == sorted(str(p.relative_to(PARTIALS)) for p in (PARTIALS / "partials").glob("*.css")) and staged
    granted = _granted(_statements(dev_app, app.deployment_role))
    assert not any("Delete" in a for a in granted)
    assert granted["s3:PutObject"] == [f"<{_logical_id(dev_app, app.site)}.Arn>/*"]
    assert granted["cloudfront:CreateInvalidation"] == [f"arn:<AWS::Partition>:cloudfront::<AWS::AccountId>:distribution/<{_logical_id(dev_app, app.distribution)}>"]


# --- tasks -------------------------------------------------------------------------------------


def test_the_tasks_table_is_keyed_by_loop_name_on_demand_encrypted_and_recoverable(dev_app, prod_app) -> None:
    for built, retained in ((dev_app, False), (prod_app, True)):
        app = built.review.reviewers_app
        table = built.template_json("review")["Resources"][_logical_id(built, app.tasks)]
        props = table["Properties"]
        assert props["KeySchema"] == [{"AttributeName": "taskId", "KeyType": "HASH"}]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"]["SSEType"] == "KMS" and "DataKey" in json.dumps(props["SSESpecification"]["KMSMasterKeyId"])
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["TimeToLiveSpecification"] == {"AttributeName": "deleteAfter", "Enabled": True}
        [index] = props["GlobalSecondaryIndexes"]
        assert index["IndexName"] == "byStatus" and [k["AttributeName"] for k in index["KeySchema"]] == ["status", "createdAt"]
        assert props["DeletionProtectionEnabled"] is retained
        assert table["DeletionPolicy"] == ("Retain" if retained else "Delete")


def test_the_tasks_tables_backup_reason_says_how_long_tasks_are_kept_and_what_only_it_holds(dev_app) -> None:
    """cdk-nag's DynamoDBInBackupPlan acknowledgment must be true: the TTL deletes a task
    RETENTION_SECONDS after its availability ends (not when it is answered or expires), and an
    expired task's partial answers are in no output.json."""
    from aws_cdk import Validations

    from lambdas.review.app.tasks import RETENTION_SECONDS

    table = dev_app.review.reviewers_app.tasks
    reasons = {rule: reason for entry in table.node.metadata if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
               for rule, reason in entry.data.items()}
    for rule in ("NIST.800.53.R5-DynamoDBInBackupPlan", "HIPAA.Security-DynamoDBInBackupPlan"):
        reason = reasons[f"Annotation::{rule}"]
        assert f"{RETENTION_SECONDS // 86_400} days after its availability" in reason and "TTL" in reason
        assert "partial answers" in reason and "exist only here" in reason
        assert "only until they are answered" not in reason
