"""template.yaml as the one description of the stack, for the local stack and the tests.

The local stack creates exactly the tables, keys, secrets, queues, buckets and routes that
the template declares, and gives the handler the environment the template gives it, so
nothing here repeats a table key, a queue attribute, a route or a variable: a change to
template.yaml is a change to the local stack. CloudWatch alarms are not created (the local
stack has no metrics), nor is anything else the local stack does not use.

Only what the local stack needs is supported: the short-form tags, ``Ref``, ``Fn::GetAtt``,
``Fn::Sub`` and ``Fn::Join``; anything else raises instead of guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "template.yaml"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
IMPLICIT_API_STAGE = "$default"  # the stage SAM gives an HttpApi event without ApiId

_PSEUDO_DEFAULTS = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
# CreateTable accepts these template properties unchanged; the rest (PITR, SSE, tags) do
# not change how the table behaves locally.
_TABLE_PROPERTIES = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)
_INDEX_PROPERTIES = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
# AWS::SQS::Queue properties that are SQS queue attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "RedriveAllowPolicy",
    "RedrivePolicy",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)
_S3_RULE_KEYS = {"ServerSideEncryptionByDefault": "ApplyServerSideEncryptionByDefault"}
SQS_MAX_BATCH_SIZE = 10  # ReceiveMessage's limit; Lambda needs a batching window for more
STREAM_DEFAULT_BATCH_SIZE = 100  # Lambda's default for a DynamoDB stream
STREAM_STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")  # AT_TIMESTAMP is Kinesis's only


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation short forms (``!Ref X``) as their long form ({"Ref": "X"})."""


def _construct_intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    """Turn ``!Name value`` into ``{"Fn::Name": value}`` (``Ref`` and ``Condition`` keep their name)."""
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


CfnLoader.add_multi_constructor("!", _construct_intrinsic)


def find_template(start: Path | None = None) -> Path:
    """Find template.yaml in ``start`` or the nearest parent (default: this file's folder).

    Walking up works from the source tree (editable install) without configuration.
    """
    origin = (start or Path(__file__)).resolve()
    for folder in (origin, *origin.parents):
        candidate = folder / TEMPLATE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no {TEMPLATE_NAME} in {origin} or its parents; pass its path explicitly")


@dataclass(frozen=True)
class Template:
    """A parsed template and where it lives (CodeUri/ContentUri are relative to it)."""

    path: Path
    body: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path.parent

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The resources of one type, by logical id, in template order."""
        return {
            logical_id: resource
            for logical_id, resource in self.body.get("Resources", {}).items()
            if resource.get("Type") == resource_type
        }

    def function_properties(self, logical_id: str) -> dict[str, Any]:
        """A function's properties with Globals.Function applied, as SAM merges them."""
        defaults = self.body.get("Globals", {}).get("Function", {})
        own = self.body["Resources"][logical_id].get("Properties", {})
        merged = {**defaults, **own}
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **own.get("Environment", {}).get("Variables", {}),
        }
        merged["Environment"] = {"Variables": variables}
        return merged


def load_template(path: Path | None = None) -> Template:
    """Parse template.yaml (found with :func:`find_template` when no path is given)."""
    template_path = (path or find_template()).resolve()
    with template_path.open(encoding="utf-8") as stream:
        body = yaml.load(stream, Loader=CfnLoader)  # CfnLoader is a SafeLoader
    return Template(path=template_path, body=body)


@dataclass
class Stack:
    """The local deployment of a template: names and ARNs of what was created, for intrinsics."""

    template: Template
    name: str = "ledgerbridge"
    region: str = "us-east-1"
    account_id: str = LOCAL_ACCOUNT_ID
    parameters: dict[str, str] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def created(self, logical_id: str, ref: str, **attributes: str) -> None:
        """Record a created resource's Ref value and its GetAtt attributes."""
        self.refs[logical_id] = ref
        self.attributes.update({(logical_id, name): value for name, value in attributes.items()})

    def resolve(self, value: Any) -> Any:
        """Replace the intrinsic functions in ``value`` with local values, recursively."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Fn::GetAtt":
                return self._get_att(*self.resolve(argument))
            if key == "Fn::Sub":
                return self._sub(argument)
            if key == "Fn::Join":
                delimiter, items = self.resolve(argument)
                return delimiter.join(str(item) for item in items)
            if key.startswith("Fn::"):
                raise ValueError(f"{key} is not supported by the local stack")
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::StackName": self.name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            **_PSEUDO_DEFAULTS,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        parameter = self.template.body.get("Parameters", {}).get(name)
        if parameter is not None and "Default" in parameter:
            return str(parameter["Default"])
        if name in self.refs:
            return self.refs[name]
        raise ValueError(f"cannot resolve Ref {name}: not a parameter with a default or a created resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self.attributes[(logical_id, attribute)]
        except KeyError:
            raise ValueError(f"cannot resolve GetAtt {logical_id}.{attribute}: not created locally") from None

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        values = {name: str(self.resolve(item)) for name, item in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return values[name]
            if "." in name and not name.startswith("AWS::"):
                return self._get_att(*name.split(".", 1))
            return self._ref(name)

        return _SUB_VARIABLE.sub(substitute, text).replace("${!", "${")


def create_resources(stack: Stack, dynamodb: Any, kms: Any, secretsmanager: Any, sqs: Any, s3: Any) -> None:
    """Create the template's tables, KMS keys and aliases, secrets, queues and buckets,
    recording them in ``stack`` (keys first: secrets and queues may name one)."""
    create_tables(stack, dynamodb)
    create_keys(stack, kms)
    create_secrets(stack, secretsmanager)
    create_queues(stack, sqs)
    create_buckets(stack, s3)


def create_secrets(stack: Stack, secretsmanager: Any) -> None:
    """Create each AWS::SecretsManager::Secret with its name, initial value and key."""
    for logical_id, resource in stack.template.resources("AWS::SecretsManager::Secret").items():
        properties = stack.resolve(resource.get("Properties", {}))
        request = {"Name": properties.get("Name", f"{stack.name}-{logical_id}")}
        request.update(_only(properties, ("Description", "KmsKeyId", "SecretString")))
        secret = secretsmanager.create_secret(**request)
        stack.created(logical_id, secret["ARN"], Id=secret["ARN"])


def create_tables(stack: Stack, dynamodb: Any) -> None:
    """Create each AWS::DynamoDB::Table with the keys, indexes, billing mode and stream it declares
    (``!GetAtt Table.StreamArn`` is the stream's ARN, as CloudFormation's)."""
    for logical_id, resource in stack.template.resources("AWS::DynamoDB::Table").items():
        properties = stack.resolve(resource.get("Properties", {}))
        request = {name: properties[name] for name in _TABLE_PROPERTIES if name in properties}
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index_kind in request:
                request[index_kind] = [_only(index, _INDEX_PROPERTIES) for index in request[index_kind]]
        request.setdefault("TableName", f"{stack.name}-{logical_id}")  # CloudFormation would generate one
        stream = properties.get("StreamSpecification")
        if stream:  # the template names only the view type; the API also wants it enabled
            request["StreamSpecification"] = {
                "StreamEnabled": True,
                "StreamViewType": stream["StreamViewType"],
            }
        table = dynamodb.create_table(**request)["TableDescription"]
        time_to_live = properties.get("TimeToLiveSpecification") or {}
        if _flag(time_to_live.get("Enabled")):
            dynamodb.update_time_to_live(
                TableName=table["TableName"],
                TimeToLiveSpecification={"AttributeName": time_to_live["AttributeName"], "Enabled": True},
            )
        stream_arn = {"StreamArn": table["LatestStreamArn"]} if stream else {}
        stack.created(logical_id, table["TableName"], Arn=table["TableArn"], **stream_arn)


def create_keys(stack: Stack, kms: Any) -> None:
    """Create each AWS::KMS::Key with its policy, then each AWS::KMS::Alias pointing at one."""
    for logical_id, resource in stack.template.resources("AWS::KMS::Key").items():
        properties = stack.resolve(resource.get("Properties", {}))
        request = {"Description": properties.get("Description", logical_id)}
        if "KeyPolicy" in properties:
            request["Policy"] = json.dumps(properties["KeyPolicy"])
        key = kms.create_key(**request)["KeyMetadata"]
        if properties.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key["KeyId"])
        stack.created(logical_id, key["KeyId"], Arn=key["Arn"], KeyId=key["KeyId"])
    for logical_id, resource in stack.template.resources("AWS::KMS::Alias").items():
        properties = stack.resolve(resource["Properties"])
        kms.create_alias(AliasName=properties["AliasName"], TargetKeyId=properties["TargetKeyId"])
        stack.created(logical_id, properties["AliasName"])


def create_queues(stack: Stack, sqs: Any) -> None:
    """Create each AWS::SQS::Queue with the attributes it declares, a queue before those that
    refer to it (a dead-letter queue before the queue whose RedrivePolicy names it)."""
    queues = stack.template.resources("AWS::SQS::Queue")
    for logical_id, resource in _in_dependency_order(queues):
        properties = stack.resolve(resource.get("Properties", {}))
        fifo = _flag(properties.get("FifoQueue"))
        # CloudFormation would generate a name; a FIFO queue's must end in .fifo.
        name = properties.get("QueueName") or f"{stack.name}-{logical_id}{'.fifo' if fifo else ''}"
        request: dict[str, Any] = {
            "QueueName": name,
            "Attributes": {
                attribute: _attribute_value(properties[attribute])
                for attribute in _QUEUE_ATTRIBUTES
                if attribute in properties
            },
        }
        if properties.get("Tags"):
            request["tags"] = {tag["Key"]: str(tag["Value"]) for tag in properties["Tags"]}
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.created(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)


def create_buckets(stack: Stack, s3: Any) -> None:
    """Create each AWS::S3::Bucket with its encryption, public access block, ownership controls,
    versioning and tags; other properties (lifecycle, CORS, logging) do not matter locally."""
    for logical_id, resource in stack.template.resources("AWS::S3::Bucket").items():
        properties = stack.resolve(resource.get("Properties", {}))
        name = properties.get("BucketName") or bucket_name(f"{stack.name}-{logical_id}")
        request: dict[str, Any] = {"Bucket": name}
        if stack.region != "us-east-1":  # us-east-1 refuses its own LocationConstraint
            request["CreateBucketConfiguration"] = {"LocationConstraint": stack.region}
        s3.create_bucket(**request)
        if "BucketEncryption" in properties:
            rules = [  # the template's ServerSideEncryptionByDefault is the API's Apply...ByDefault
                {_S3_RULE_KEYS.get(key, key): value for key, value in rule.items()}
                for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in properties:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in properties:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=properties["OwnershipControls"])
        if "VersioningConfiguration" in properties:
            s3.put_bucket_versioning(
                Bucket=name, VersioningConfiguration=properties["VersioningConfiguration"]
            )
        if properties.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": properties["Tags"]})
        partition = stack.resolve({"Ref": "AWS::Partition"})
        stack.created(
            logical_id,
            name,
            Arn=f"arn:{partition}:s3:::{name}",
            DomainName=f"{name}.s3.amazonaws.com",
            RegionalDomainName=f"{name}.s3.{stack.region}.amazonaws.com",
        )


def bucket_name(text: str) -> str:
    """``text`` as a valid S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens."""
    name = re.sub(r"[^a-z0-9.-]+", "-", text.lower())
    name = re.sub(r"[.-]{2,}", "-", name)[:63].strip(".-")
    if len(name) < 3:
        raise ValueError(f"cannot make a bucket name of {text!r}")
    return name


def references(value: Any) -> set[str]:
    """The logical ids (and parameters) that ``value`` refers to with Ref, GetAtt or Sub."""
    if isinstance(value, list):
        return set().union(*(references(item) for item in value))
    if not isinstance(value, dict):
        return set()
    if len(value) == 1:
        [(key, argument)] = value.items()
        if key == "Ref" and isinstance(argument, str):
            return {argument}
        if key == "Fn::GetAtt":
            target = argument[0] if isinstance(argument, list) else str(argument).split(".", 1)[0]
            return {target} if isinstance(target, str) else references(target)
        if key == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            named = {match.group(1).split(".", 1)[0] for match in _SUB_VARIABLE.finditer(text)}
            return (named - set(variables)) | references(list(variables.values()))
    return set().union(*(references(item) for item in value.values()))


def _in_dependency_order(resources: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``resources`` in template order, except that each comes after those of them it refers
    to (in its properties or DependsOn), as CloudFormation would create them."""
    pending = dict(resources)
    ordered: list[tuple[str, dict[str, Any]]] = []
    while pending:
        ready = [
            logical_id
            for logical_id, resource in pending.items()
            if not (
                references([resource.get("Properties", {}), _as_refs(resource.get("DependsOn"))])
                & (pending.keys() - {logical_id})
            )
        ]
        if not ready:
            raise ValueError(f"circular references between {', '.join(sorted(pending))}")
        ordered += [(logical_id, pending.pop(logical_id)) for logical_id in ready]
    return ordered


def _as_refs(depends_on: Any) -> list[dict[str, str]]:
    names = [depends_on] if isinstance(depends_on, str) else depends_on or []
    return [{"Ref": name} for name in names]


def _flag(value: Any) -> bool:
    """A template boolean: YAML's true, or the string "true" as CloudFormation also accepts."""
    return value is True or str(value).lower() == "true"


def _attribute_value(value: Any) -> str:
    """A template value as an SQS attribute: booleans lower case, policies as JSON text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _only(mapping: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: mapping[key] for key in keys if key in mapping}


def function_environment(stack: Stack, logical_id: str) -> dict[str, str]:
    """The environment variables Lambda would give the function, resolved against ``stack``."""
    variables = stack.template.function_properties(logical_id)["Environment"]["Variables"]
    return {name: str(stack.resolve(value)) for name, value in variables.items()}


@dataclass(frozen=True)
class Route:
    """One API event of a function: the request it answers and the code that answers it."""

    method: str  # upper case; ANY matches every method
    path: str  # the API Gateway resource path, e.g. /accounting/invoices/{id}
    function: str  # logical id
    handler: str  # module.attribute, relative to code_uri
    code_uri: Path
    stage: str


def api_routes(template: Template) -> list[Route]:
    """Every ``Type: HttpApi`` event of every AWS::Serverless::Function, in template order.

    The local stack sends what an HTTP API sends with payload format 2.0 (``stack.proxy_event``),
    so a REST API event (``Type: Api``) or another payload format is an error, not a guess."""
    routes = []
    for logical_id in template.resources("AWS::Serverless::Function"):
        properties = template.function_properties(logical_id)
        for name, event in properties.get("Events", {}).items():
            if event.get("Type") == "Api":
                raise ValueError(f"{logical_id}.{name}: REST API events are not served locally; use HttpApi")
            if event.get("Type") != "HttpApi":
                continue
            event_properties = event["Properties"]
            if str(event_properties.get("PayloadFormatVersion", "2.0")) != "2.0":
                raise ValueError(f"{logical_id}.{name}: only payload format 2.0 is served locally")
            routes.append(
                Route(
                    method=event_properties["Method"].upper(),
                    path=event_properties["Path"],
                    function=logical_id,
                    handler=properties["Handler"],
                    code_uri=(template.root / properties["CodeUri"]).resolve(),
                    stage=_stage_name(template, event_properties.get("ApiId")),
                )
            )
    return routes


def _stage_name(template: Template, api_id: Any) -> str:
    """The StageName of the AWS::Serverless::HttpApi an event refers to (``{"Ref": "HttpApi"}``)."""
    if not isinstance(api_id, dict) or "Ref" not in api_id:
        return IMPLICIT_API_STAGE
    api = template.body["Resources"][api_id["Ref"]]
    return str(api.get("Properties", {}).get("StageName", IMPLICIT_API_STAGE))


@dataclass(frozen=True)
class QueueEvent:
    """One ``Type: SQS`` event of a function: the queue Lambda polls for it, and how."""

    name: str  # the event's key under Events
    function: str  # logical id
    handler: str
    code_uri: Path
    queue: Any  # the Queue property as written (usually !GetAtt X.Arn): resolve it against a Stack
    batch_size: int  # at most SQS_MAX_BATCH_SIZE
    report_batch_item_failures: bool


@dataclass(frozen=True)
class StreamEvent:
    """One ``Type: DynamoDB`` event of a function: the table stream Lambda reads for it, and how."""

    name: str  # the event's key under Events
    function: str  # logical id
    handler: str
    code_uri: Path
    stream: Any  # the Stream property as written (usually !GetAtt X.StreamArn): resolve it against a Stack
    batch_size: int
    starting_position: str  # TRIM_HORIZON or LATEST
    report_batch_item_failures: bool
    bisect_batch_on_function_error: bool
    maximum_retry_attempts: int  # -1: until the record expires (the default)


@dataclass(frozen=True)
class ScheduleEvent:
    """One ``Type: Schedule`` (EventBridge rule) or ``ScheduleV2`` (EventBridge Scheduler) event."""

    name: str  # the event's key under Events
    function: str
    handler: str
    code_uri: Path
    kind: str  # Schedule or ScheduleV2
    expression: str  # rate(...) or cron(...); the local stack uses its own period instead
    schedule_name: str  # the rule's or schedule's Name (SAM's default: function id + event key)
    group_name: str  # ScheduleV2's GroupName
    input: Any  # the Input property as written (a JSON string, maybe an intrinsic), or None


def _function_events(
    template: Template, *types: str
) -> Iterator[tuple[str, dict[str, Any], str, dict[str, Any]]]:
    """(function id, function properties, event key, event properties) of the given event types."""
    for logical_id in template.resources("AWS::Serverless::Function"):
        properties = template.function_properties(logical_id)
        for event_name, event in properties.get("Events", {}).items():
            if event.get("Type") in types:
                yield (
                    logical_id,
                    properties,
                    event_name,
                    {"Type": event["Type"], **event.get("Properties", {})},
                )


def queue_events(template: Template) -> list[QueueEvent]:
    """Every enabled ``Type: SQS`` event of every function, in template order."""
    events = []
    for logical_id, properties, event_name, event in _function_events(template, "SQS"):
        if "Enabled" in event and not _flag(event["Enabled"]):
            continue
        if "FilterCriteria" in event:  # Lambda would delete what the filter drops: not emulated
            raise ValueError(f"{logical_id}.{event_name}: FilterCriteria is not supported by the local stack")
        events.append(
            QueueEvent(
                name=event_name,
                function=logical_id,
                handler=properties["Handler"],
                code_uri=(template.root / properties["CodeUri"]).resolve(),
                queue=event["Queue"],
                batch_size=min(int(event.get("BatchSize", SQS_MAX_BATCH_SIZE)), SQS_MAX_BATCH_SIZE),
                report_batch_item_failures="ReportBatchItemFailures"
                in event.get("FunctionResponseTypes", []),
            )
        )
    return events


def stream_events(template: Template) -> list[StreamEvent]:
    """Every enabled ``Type: DynamoDB`` event of every function, in template order."""
    events = []
    for logical_id, properties, event_name, event in _function_events(template, "DynamoDB"):
        if "Enabled" in event and not _flag(event["Enabled"]):
            continue
        for unsupported in ("FilterCriteria", "TumblingWindowInSeconds"):  # they change what is sent
            if unsupported in event:
                raise ValueError(
                    f"{logical_id}.{event_name}: {unsupported} is not supported by the local stack"
                )
        position = str(event.get("StartingPosition", ""))
        if position not in STREAM_STARTING_POSITIONS:
            raise ValueError(f"{logical_id}.{event_name}: StartingPosition {position!r} is not a stream's")
        events.append(
            StreamEvent(
                name=event_name,
                function=logical_id,
                handler=properties["Handler"],
                code_uri=(template.root / properties["CodeUri"]).resolve(),
                stream=event["Stream"],
                batch_size=int(event.get("BatchSize", STREAM_DEFAULT_BATCH_SIZE)),
                starting_position=position,
                report_batch_item_failures="ReportBatchItemFailures"
                in event.get("FunctionResponseTypes", []),
                bisect_batch_on_function_error=_flag(event.get("BisectBatchOnFunctionError", False)),
                maximum_retry_attempts=int(event.get("MaximumRetryAttempts", -1)),
            )
        )
    return events


def schedule_events(template: Template) -> list[ScheduleEvent]:
    """Every enabled ``Type: Schedule``/``ScheduleV2`` event of every function, in template order."""
    events = []
    for logical_id, properties, event_name, event in _function_events(template, "Schedule", "ScheduleV2"):
        disabled = str(event.get("State", "ENABLED")).upper() == "DISABLED"
        if disabled or ("Enabled" in event and not _flag(event["Enabled"])):
            continue
        events.append(
            ScheduleEvent(
                name=event_name,
                function=logical_id,
                handler=properties["Handler"],
                code_uri=(template.root / properties["CodeUri"]).resolve(),
                kind=event["Type"],
                expression=str(event.get("Schedule") or event.get("ScheduleExpression", "")),
                schedule_name=str(event.get("Name") or f"{logical_id}{event_name}"),
                group_name=str(event.get("GroupName") or "default"),
                input=event.get("Input"),
            )
        )
    return events
