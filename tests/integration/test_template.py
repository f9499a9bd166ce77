"""template.yaml: least privilege, the dependency layer in step with pyproject.toml, one HTTP API
(payload format 2.0) in front of every route, the API function's SnapStart versions behind the
alias API Gateway invokes, and a ``sam validate --lint`` / ``sam build`` that works without
Docker and yields arm64 artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from benchmarks.runtime import lambda_python
from ledgerbridge.local.template import (
    Stack,
    Template,
    api_routes,
    bucket_name,
    create_queues,
    create_resources,
    function_environment,
    load_template,
    queue_events,
    schedule_events,
)

REPO = Path(__file__).resolve().parents[2]
EM_AARCH64 = 183  # ELF e_machine of arm64
UNCHECKED_HASH = 0b01  # .pyc flags (PEP 552): hash-based, source not checked


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(REPO / "template.yaml")


def _policy_documents(node: Any) -> Iterator[dict[str, Any]]:
    """Every IAM policy document in the template, except KMS key policies (see below)."""
    if isinstance(node, dict):
        if "Statement" in node:
            yield node
        for key, value in node.items():
            if key != "KeyPolicy":
                yield from _policy_documents(value)
    elif isinstance(node, list):
        for item in node:
            yield from _policy_documents(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_iam_statement_grants_every_resource(template: Template) -> None:
    statements = [s for doc in _policy_documents(template.body["Resources"]) for s in doc["Statement"]]
    assert statements, "the function's policies were not found"
    for statement in statements:
        assert "NotResource" not in statement, statement
        for resource in _as_list(statement["Resource"]):
            assert not (isinstance(resource, str) and "*" in resource), statement


def test_key_policies_delegate_to_the_account_only(template: Template) -> None:
    """A key policy's Resource must be "*" (it means "this key"), so check who it names instead."""
    stack = Stack(template)
    for resource in template.resources("AWS::KMS::Key").values():
        for statement in resource["Properties"]["KeyPolicy"]["Statement"]:
            principal = stack.resolve(statement["Principal"])
            assert principal == {"AWS": f"arn:aws:iam::{stack.account_id}:root"}, statement


def test_dependency_layer_pins_exactly_the_project_dependencies() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    lines = (REPO / "layers/dependencies/requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert requirements == pyproject["project"]["dependencies"]


@pytest.fixture
def deployed(template: Template, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stack, dict[str, Any]]]:
    """The template's resources created in a fresh moto account, and the clients that see them."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    stack = Stack(template, name="ledgerbridge")
    with mock_aws():
        services = ("dynamodb", "kms", "secretsmanager", "sqs", "s3")
        clients = {service: boto3.client(service, region_name=stack.region) for service in services}
        create_resources(stack, *clients.values())
        yield stack, clients


def test_local_stack_creates_the_declared_tables_and_key(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, clients = deployed
    dynamodb, kms, secrets = clients["dynamodb"], clients["kms"], clients["secretsmanager"]
    invoices = dynamodb.describe_table(TableName="ledgerbridge-invoices")["Table"]
    oauth = json.loads(secrets.get_secret_value(SecretId="ledgerbridge/oauth-clients")["SecretString"])
    aliases = {alias["AliasName"]: alias.get("TargetKeyId") for alias in kms.list_aliases()["Aliases"]}
    declared = template.body["Resources"]["InvoicesTable"]["Properties"]
    assert invoices["KeySchema"] == declared["KeySchema"]
    assert invoices["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    assert stack.refs["AccountsTable"] == "ledgerbridge-accounts"
    assert aliases["alias/ledgerbridge-credentials"] == stack.refs["CredentialsKey"]
    assert set(oauth) == {"quickbooks", "xero", "freshbooks", "zoho_books", "exact_online", "pennylane"}
    assert stack.refs["OAuthClientsSecret"].startswith("arn:aws:secretsmanager:")


def test_local_stack_creates_the_declared_indexes(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, clients = deployed
    dynamodb = clients["dynamodb"]
    declared = template.body["Resources"]["InvoicesTable"]["Properties"]["GlobalSecondaryIndexes"]
    table = dynamodb.describe_table(TableName=stack.refs["InvoicesTable"])["Table"]
    created = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(created) == {index["IndexName"] for index in declared}
    for index in declared:
        assert created[index["IndexName"]]["KeySchema"] == index["KeySchema"]
        assert created[index["IndexName"]]["Projection"] == index["Projection"]

    # PendingIndex is sparse and projects only what the sweeper reads.
    item = {"connection_id": "c1", "id": "i1", "created_at": "2026-01-01T00:00:00Z", "project_id": "p1"}
    unlisted = {"memo": {"S": "not projected"}}
    for invoice, pending in (("i1", True), ("i2", False)):
        attributes = {name: {"S": value} for name, value in {**item, "id": invoice}.items()}
        dynamodb.put_item(
            TableName=stack.refs["InvoicesTable"],
            Item={**attributes, **unlisted, **({"pending": {"S": "pending"}} if pending else {})},
        )
    found = dynamodb.query(
        TableName=stack.refs["InvoicesTable"],
        IndexName="PendingIndex",
        KeyConditionExpression="pending = :p",
        ExpressionAttributeValues={":p": {"S": "pending"}},
    )["Items"]
    assert [row["id"]["S"] for row in found] == ["i1"]
    assert "memo" not in found[0] and found[0]["project_id"] == {"S": "p1"}


def test_local_stack_enables_the_declared_time_to_live(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, clients = deployed
    tables = template.resources("AWS::DynamoDB::Table")
    with_ttl = {
        table for table, resource in tables.items() if "TimeToLiveSpecification" in resource["Properties"]
    }
    assert "IdempotencyTable" in with_ttl
    for table in tables:
        ttl = clients["dynamodb"].describe_time_to_live(TableName=stack.refs[table])["TimeToLiveDescription"]
        if table in with_ttl:
            declared = tables[table]["Properties"]["TimeToLiveSpecification"]
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": declared["AttributeName"]}
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_local_stack_creates_the_fifo_retry_queue_with_its_dead_letter_queue(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, clients = deployed
    sqs = clients["sqs"]
    declared = template.body["Resources"]["RetryQueue"]["Properties"]
    attributes = sqs.get_queue_attributes(QueueUrl=stack.refs["RetryQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    dead_letter = sqs.get_queue_attributes(
        QueueUrl=stack.refs["RetryDeadLetterQueue"], AttributeNames=["All"]
    )["Attributes"]

    assert stack.refs["RetryQueue"].endswith("/ledgerbridge-retries.fifo")  # Ref is the URL
    assert stack.attributes[("RetryQueue", "QueueName")] == "ledgerbridge-retries.fifo"
    assert attributes["QueueArn"] == stack.attributes[("RetryQueue", "Arn")]
    assert attributes["FifoQueue"] == dead_letter["FifoQueue"] == "true"
    assert attributes["SqsManagedSseEnabled"] == "true"
    for name in ("VisibilityTimeout", "MessageRetentionPeriod"):
        assert int(attributes[name]) == declared[name], name
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dead_letter["QueueArn"]
    assert int(redrive["maxReceiveCount"]) == declared["RedrivePolicy"]["maxReceiveCount"]


def test_local_stack_creates_a_private_encrypted_bucket(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, clients = deployed
    s3 = clients["s3"]
    declared = template.body["Resources"]["OffloadBucket"]["Properties"]
    bucket = stack.refs["OffloadBucket"]
    assert bucket == "ledgerbridge-offloadbucket"  # CloudFormation would generate a name
    assert stack.attributes[("OffloadBucket", "Arn")] == f"arn:aws:s3:::{bucket}"
    assert bucket in {found["Name"] for found in s3.list_buckets()["Buckets"]}
    [rule] = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    [declared_rule] = declared["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ApplyServerSideEncryptionByDefault"] == declared_rule["ServerSideEncryptionByDefault"]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == declared["PublicAccessBlockConfiguration"]
    assert all(block.values())
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]
    assert ownership == declared["OwnershipControls"]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == declared["VersioningConfiguration"]["Status"]


def test_every_function_environment_resolves_against_the_local_stack(
    template: Template, deployed: tuple[Stack, dict[str, Any]]
) -> None:
    stack, _ = deployed
    for function in template.resources("AWS::Serverless::Function"):
        environment = function_environment(stack, function)
        assert environment["LEDGERBRIDGE_RETRY_QUEUE_URL"] == stack.refs["RetryQueue"]
        assert environment["LEDGERBRIDGE_OFFLOAD_BUCKET"] == stack.refs["OffloadBucket"]
        assert environment["LEDGERBRIDGE_IDEMPOTENCY_TABLE"] == "ledgerbridge-idempotency"


def test_the_local_stack_reads_the_functions_event_sources(template: Template) -> None:
    [retries] = [e for e in queue_events(template) if e.function == "RetryFunction"]
    declared = template.body["Resources"]["RetryFunction"]["Properties"]["Events"]["Retries"]["Properties"]
    assert (retries.function, retries.queue) == ("RetryFunction", declared["Queue"])
    assert retries.batch_size == declared["BatchSize"]
    assert retries.report_batch_item_failures
    schedules = {schedule.function: schedule for schedule in schedule_events(template)}
    assert {"SyncFunction", "SweeperFunction"} <= set(schedules)
    assert schedules["SweeperFunction"].kind == "ScheduleV2"
    assert schedules["SweeperFunction"].code_uri == REPO / "functions" / "sweeper"


def _template(resources: dict[str, Any]) -> Template:
    return Template(path=REPO / "template.yaml", body={"Resources": resources})


def test_queues_are_created_after_the_queues_they_refer_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    redrive = {"deadLetterTargetArn": {"Fn::GetAtt": ["Middle", "Arn"]}, "maxReceiveCount": 3}
    template = _template(
        {
            "First": {"Type": "AWS::SQS::Queue", "Properties": {"RedrivePolicy": redrive}},
            "Middle": {"Type": "AWS::SQS::Queue", "DependsOn": "Last", "Properties": {"DelaySeconds": 2}},
            "Last": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-last"}},
            },
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Dimensions": [{"Ref": "Last"}]}},
        }
    )
    stack = Stack(template, name="demo")
    with mock_aws():
        sqs = boto3.client("sqs", region_name=stack.region)
        create_queues(stack, sqs)
        names = [url.rsplit("/", 1)[1] for url in sqs.list_queues()["QueueUrls"]]
        first = sqs.get_queue_attributes(QueueUrl=stack.refs["First"], AttributeNames=["All"])["Attributes"]
    assert sorted(names) == ["demo-First", "demo-Middle", "demo-last"]
    assert json.loads(first["RedrivePolicy"])["deadLetterTargetArn"] == stack.attributes[("Middle", "Arn")]
    assert "Alarm" not in stack.refs  # alarms are not created locally


def test_circular_queue_references_are_an_error() -> None:
    template = _template(
        {
            "A": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "b", "Value": {"Ref": "B"}}]}},
            "B": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "a", "Value": {"Ref": "A"}}]}},
        }
    )
    with pytest.raises(ValueError, match="circular references between A, B"):
        create_queues(Stack(template), sqs=None)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("ledgerbridge-OffloadBucket", "ledgerbridge-offloadbucket"),
        ("My_Stack--Bucket..", "my-stack-bucket"),
        ("x" * 70, "x" * 63),
    ],
)
def test_bucket_names_are_valid_s3_names(text: str, name: str) -> None:
    assert bucket_name(text) == name


def _sam(*args: str | Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run sam from the venv with the venv first on PATH: the Makefiles call its python3 and pip."""
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        **variables,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "SAM_CLI_TELEMETRY": "0",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    command = [str(venv_bin / "sam"), *map(str, args)]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


@pytest.mark.sam
def test_sam_validate_lint() -> None:
    result = _sam("validate", "--lint", "--template-file", "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.sam
def test_sam_build_makes_arm64_python312_artifacts_without_docker(tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    python312 = lambda_python()
    result = _sam(
        "build",
        "--template-file",
        "template.yaml",
        "--build-dir",
        build_dir,
        "--cache-dir",
        tmp_path / "cache",
        **({"PYTHON312": python312} if python312 else {}),
    )
    assert result.returncode == 0, result.stdout + result.stderr

    function = load_template(build_dir / "template.yaml").function_properties("ApiFunction")
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])
    assert (build_dir / "ApiFunction/app.py").is_file()
    shared = build_dir / "SharedLayer/python/ledgerbridge"
    assert (shared / "__init__.py").is_file()
    assert not (shared / "local").exists(), "the dev-only local stack must not ship"
    [extension] = (build_dir / "DependenciesLayer/python/pydantic_core").glob("_pydantic_core*.so")
    assert _elf_machine(extension) == EM_AARCH64
    code = [build_dir / "ApiFunction", shared, build_dir / "DependenciesLayer/python/pydantic"]
    if python312 is None:
        assert not [pyc for directory in code for pyc in directory.rglob("*.pyc")]
        pytest.skip("no CPython 3.12 here: the artifacts ship without .pyc (checked above)")
    for directory in code:  # every module compiled for 3.12, unchecked-hash, and nothing else
        for source in directory.rglob("*.py"):
            pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
            assert int.from_bytes(pyc.read_bytes()[4:8], "little") == UNCHECKED_HASH, pyc
        assert {pyc.name.split(".")[-2] for pyc in directory.rglob("*.pyc")} == {"cpython-312"}


def test_the_api_function_publishes_snapstart_versions_behind_an_alias(template: Template) -> None:
    """SnapStart snapshots published versions only: without the alias, API Gateway would invoke
    $LATEST, which never has a snapshot, and every cold start would run init in full."""
    function = template.function_properties("ApiFunction")
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["AutoPublishAlias"] == "live"
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])  # has SnapStart
    assert template.body["Outputs"]["ApiFunctionAliasArn"]["Value"] == {"Ref": "ApiFunction.Alias"}


def test_every_route_is_on_the_http_api_with_payload_format_2(template: Template) -> None:
    """One HTTP API (not a REST API: README, "Cost per million sandbox creates") in front of every
    function's routes, each with the 2.0 event the functions' APIGatewayHttpResolver reads. Its
    logical id is not the REST API's "Api": CloudFormation refuses to change a deployed
    resource's type, so a stack deployed with the REST API could not be updated."""
    assert template.body["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    assert "Api" not in template.body["Resources"]
    assert not template.resources("AWS::Serverless::Api")
    events = [
        event
        for function in template.resources("AWS::Serverless::Function")
        for event in template.function_properties(function).get("Events", {}).values()
        if "Path" in event.get("Properties", {}) or event.get("Type") in ("Api", "HttpApi")
    ]
    assert len(events) == len(api_routes(template)) == 34
    for event in events:
        assert event["Type"] == "HttpApi", event
        assert event["Properties"]["ApiId"] == {"Ref": "HttpApi"}, event
        assert event["Properties"]["PayloadFormatVersion"] == "2.0", event


def test_the_stage_keeps_the_rest_apis_url_limits_and_alarm(template: Template) -> None:
    """The stage is still v1 (ApiUrl https://<id>.execute-api.<region>.amazonaws.com/v1/, as
    the REST API's), throttled 200 burst / 100 per second with per-route metrics; the 5xx alarm
    watches the HTTP API's own metric (``5xx`` by ApiId and Stage, not REST's ``5XXError`` by
    ApiName)."""
    api = template.body["Resources"]["HttpApi"]["Properties"]
    stage = api["StageName"]
    assert stage == "v1"
    assert api["DefaultRouteSettings"] == {
        "DetailedMetricsEnabled": True,
        "ThrottlingBurstLimit": 200,
        "ThrottlingRateLimit": 100,
    }
    alarm = template.body["Resources"]["Api5xxAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert alarm["Dimensions"] == [
        {"Name": "ApiId", "Value": {"Ref": "HttpApi"}},
        {"Name": "Stage", "Value": stage},
    ]
    url = template.body["Outputs"]["ApiUrl"]["Value"]["Fn::Sub"]
    assert url == f"https://${{HttpApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{stage}/"


@pytest.fixture(scope="module")
def transformed(template: Template) -> dict[str, Any]:
    """The resources SAM's own transform makes of the template (what CloudFormation runs)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:  # the template names no managed policy, so nothing is looked up
        def load(self) -> dict[str, str]:
            return {}

    body = json.loads(json.dumps(template.body))
    for resource in body["Resources"].values():  # sam package would put S3 URIs here
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return transform(body, {}, NoManagedPolicies())["Resources"]


@pytest.mark.sam
def test_sam_makes_one_http_api_stage_and_2_0_integrations(
    template: Template, transformed: dict[str, Any]
) -> None:
    """The v1 stage alone (no $default stage beside it), with the route settings, and every
    route's integration a Lambda proxy with payload format 2.0."""
    assert transformed["HttpApi"]["Type"] == "AWS::ApiGatewayV2::Api"
    stages = [r["Properties"] for r in transformed.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert [stage["StageName"] for stage in stages] == ["v1"]
    assert (
        stages[0]["DefaultRouteSettings"]
        == template.body["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    )
    paths = transformed["HttpApi"]["Properties"]["Body"]["paths"]
    for route in api_routes(template):
        integration = paths[route.path][route.method.lower()]["x-amazon-apigateway-integration"]
        assert (integration["type"], integration["payloadFormatVersion"]) == ("aws_proxy", "2.0"), route


@pytest.mark.sam
def test_api_gateway_invokes_the_api_function_through_its_alias(
    template: Template, transformed: dict[str, Any]
) -> None:
    """SAM's own transform: every route of the API function is integrated with, and allowed to
    invoke, the alias; none reaches the unqualified function."""
    resources = transformed
    paths = resources["HttpApi"]["Properties"]["Body"]["paths"]
    routes = [route for route in api_routes(template) if route.function == "ApiFunction"]
    assert routes
    for route in routes:
        uri = paths[route.path][route.method.lower()]["x-amazon-apigateway-integration"]["uri"]
        assert "/functions/${ApiFunctionAliaslive}/invocations" in uri["Fn::Sub"], (route, uri)
    permissions = [
        resource["Properties"]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Permission" and logical_id.startswith("ApiFunction")
    ]
    assert len(permissions) == len(routes)
    assert all(permission["FunctionName"] == {"Ref": "ApiFunctionAliaslive"} for permission in permissions)
    assert resources["ApiFunctionAliaslive"]["Properties"]["Name"] == "live"
