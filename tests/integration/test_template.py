"""template.yaml: least privilege, the dependency layer in step with pyproject.toml, and a
``sam validate --lint`` / ``sam build`` that works without Docker and yields arm64 artifacts."""

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

from ledgerbridge.local.template import Stack, Template, create_resources, load_template

REPO = Path(__file__).resolve().parents[2]
EM_AARCH64 = 183  # ELF e_machine of arm64


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


def test_local_stack_creates_the_declared_tables_and_key(
    template: Template, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    stack = Stack(template, name="ledgerbridge")
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=stack.region)
        kms = boto3.client("kms", region_name=stack.region)
        secrets = boto3.client("secretsmanager", region_name=stack.region)
        create_resources(stack, dynamodb, kms, secrets)
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


def _sam(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run sam from the venv with the venv first on PATH: the Makefiles call its python3 and pip."""
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
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
    result = _sam(
        "build",
        "--template-file",
        "template.yaml",
        "--build-dir",
        build_dir,
        "--cache-dir",
        tmp_path / "cache",
    )
    assert result.returncode == 0, result.stdout + result.stderr

    function = load_template(build_dir / "template.yaml").function_properties("ApiFunction")
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])
    assert (build_dir / "ApiFunction/app.py").is_file()
    shared = build_dir / "SharedLayer/python/ledgerbridge"
    assert (shared / "__init__.py").is_file()
    assert not (shared / "local").exists(), "the dev-only local stack must not ship"
    assert not list(shared.rglob("__pycache__"))
    [extension] = (build_dir / "DependenciesLayer/python/pydantic_core").glob("_pydantic_core*.so")
    assert _elf_machine(extension) == EM_AARCH64
