"""template.yaml as the one description of the stack, for the local stack and the tests.

The local stack creates exactly the tables, keys and routes that the template declares, and
gives the handler the environment the template gives it, so nothing here repeats a table
key, a route or a variable: a change to template.yaml is a change to the local stack.

Only what the local stack needs is supported: the short-form tags, ``Ref``, ``Fn::GetAtt``,
``Fn::Sub`` and ``Fn::Join``; anything else raises instead of guessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "template.yaml"
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
IMPLICIT_API_STAGE = "Prod"  # the stage SAM gives an Api event without RestApiId

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


def create_resources(stack: Stack, dynamodb: Any, kms: Any, secretsmanager: Any) -> None:
    """Create the template's tables, KMS keys and aliases, and secrets, recording them in ``stack``."""
    create_tables(stack, dynamodb)
    create_keys(stack, kms)
    create_secrets(stack, secretsmanager)


def create_secrets(stack: Stack, secretsmanager: Any) -> None:
    """Create each AWS::SecretsManager::Secret with its name, initial value and key."""
    for logical_id, resource in stack.template.resources("AWS::SecretsManager::Secret").items():
        properties = stack.resolve(resource.get("Properties", {}))
        request = {"Name": properties.get("Name", f"{stack.name}-{logical_id}")}
        request.update(_only(properties, ("Description", "KmsKeyId", "SecretString")))
        secret = secretsmanager.create_secret(**request)
        stack.created(logical_id, secret["ARN"], Id=secret["ARN"])


def create_tables(stack: Stack, dynamodb: Any) -> None:
    """Create each AWS::DynamoDB::Table with the keys, indexes and billing mode it declares."""
    for logical_id, resource in stack.template.resources("AWS::DynamoDB::Table").items():
        properties = stack.resolve(resource.get("Properties", {}))
        request = {name: properties[name] for name in _TABLE_PROPERTIES if name in properties}
        for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if index_kind in request:
                request[index_kind] = [_only(index, _INDEX_PROPERTIES) for index in request[index_kind]]
        request.setdefault("TableName", f"{stack.name}-{logical_id}")  # CloudFormation would generate one
        table = dynamodb.create_table(**request)["TableDescription"]
        stack.created(logical_id, table["TableName"], Arn=table["TableArn"])


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
    """Every ``Type: Api`` event of every AWS::Serverless::Function, in template order."""
    routes = []
    for logical_id in template.resources("AWS::Serverless::Function"):
        properties = template.function_properties(logical_id)
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "Api":
                continue
            event_properties = event["Properties"]
            routes.append(
                Route(
                    method=event_properties["Method"].upper(),
                    path=event_properties["Path"],
                    function=logical_id,
                    handler=properties["Handler"],
                    code_uri=(template.root / properties["CodeUri"]).resolve(),
                    stage=_stage_name(template, event_properties.get("RestApiId")),
                )
            )
    return routes


def _stage_name(template: Template, rest_api_id: Any) -> str:
    """The StageName of the AWS::Serverless::Api an event refers to (``{"Ref": "Api"}``)."""
    if not isinstance(rest_api_id, dict) or "Ref" not in rest_api_id:
        return IMPLICIT_API_STAGE
    api = template.body["Resources"][rest_api_id["Ref"]]
    return str(api.get("Properties", {}).get("StageName", IMPLICIT_API_STAGE))
