"""ledgerbridge-admin against moto: secrets shown once, stored only hashed or encrypted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from ledgerbridge import admin
from ledgerbridge.config import settings
from ledgerbridge.ids import reference_id
from tests.integration.conftest import Api

# What a fresh sandbox ledger's directory holds, by kind, in the order the sync reports it.
SANDBOX_DIRECTORY = {"contact": 3, "item": 2, "tracking_category": 2, "accounting_period": 1, "account": 2}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert admin.main(["--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def all_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=settings().accounts_table)["Items"]


def test_create_project_key_and_connection(
    aws: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = run(capsys, "create-project", "--name", "Acme SaaS")
    key = run(capsys, "create-api-key", "--project", project["project_id"])
    credentials = tmp_path / "tokens.json"
    credentials.write_text(json.dumps({"access_token": "at-SECRET-1", "refresh_token": "rt-SECRET-2"}))
    connection = run(
        capsys, "create-connection", "--project", project["project_id"], "--provider", "sandbox",
        "--credentials", str(credentials), "--setting", "realm_id=123", "--setting", "note=a=b",
    )  # fmt: skip
    assert key["api_key"].startswith("lbk_") and connection["connection_token"].startswith("lbc_")

    stored = repr(all_items())
    for secret in (key["api_key"], connection["connection_token"], "at-SECRET-1", "rt-SECRET-2"):
        assert secret not in stored

    [listed] = run(capsys, "list-connections", "--project", project["project_id"])
    assert listed["settings"] == {"realm_id": "123", "note": "a=b"}
    assert listed["provider"] == "sandbox"


def test_credentials_are_kms_encrypted_for_their_connection(aws: Any, tmp_path: Path) -> None:
    project = admin.create_project("P")
    connection = admin.create_connection(project["project_id"], "sandbox", {"refresh_token": "rt-1"})
    item = boto3.client("dynamodb").get_item(
        TableName=settings().accounts_table,
        Key={
            "pk": {"S": f"PROJECT#{project['project_id']}"},
            "sk": {"S": f"CONNECTION#{connection['connection_id']}"},
        },
    )["Item"]
    plaintext = boto3.client("kms").decrypt(
        CiphertextBlob=item["credentials"]["B"],
        EncryptionContext={"connection_id": connection["connection_id"]},
    )["Plaintext"]
    assert json.loads(plaintext) == {"refresh_token": "rt-1"}


def test_sandbox_connections_know_their_ledgers_directory(aws: Any) -> None:
    project = admin.create_project("P")
    connection_id = admin.create_connection(project["project_id"], "sandbox")["connection_id"]
    [result] = admin.sync_references(connection_id=connection_id)
    assert result["synced"] == SANDBOX_DIRECTORY
    refs = {item["sk"]["S"] for item in all_items() if item["pk"]["S"] == f"CONNECTION#{connection_id}"}
    assert f"REF#contact#{reference_id(connection_id, 'contact', 'C-1001')}" in refs
    assert len(refs) == sum(SANDBOX_DIRECTORY.values())


def test_list_connections_without_project_lists_every_project(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("A", "B"):
        admin.create_connection(admin.create_project(name)["project_id"], "sandbox")
    assert len(run(capsys, "list-connections")) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create-api-key", "--project", "nope"], "no project nope"),
        (["revoke-api-key", "--key-id", "nope"], "no API key nope"),
        (["create-connection", "--project", "{project}", "--provider", "wave"], "provider must be"),
        (["create-connection", "--project", "{project}", "--provider", "xero"], "xero needs --credentials"),
        (["create-connection", "--project", "{project}", "--provider", "sandbox", "--credentials", "/no"],
         "cannot read credentials"),
    ],
)  # fmt: skip
def test_operator_mistakes_exit_2_with_a_message(
    aws: Any, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    project = admin.create_project("P")["project_id"]
    assert admin.main([arg.format(project=project) for arg in args]) == 2
    assert message in capsys.readouterr().err


def test_bad_setting_syntax_is_refused_by_argparse(aws: Any) -> None:
    with pytest.raises(SystemExit):
        admin.main(["create-connection", "--project", "p", "--provider", "sandbox", "--setting", "novalue"])


def test_stack_option_picks_the_tables(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_ACCOUNTS_TABLE")
    monkeypatch.delenv("LEDGERBRIDGE_STACK", raising=False)
    assert admin.main(["--stack", "ledgerbridge", "create-project", "--name", "found"]) == 0
    assert admin.main(["--stack", "missing", "create-project", "--name", "lost"]) == 1
    assert "AWS call failed" in capsys.readouterr().err
    assert settings().accounts_table == "missing-accounts"


# --- create-connection syncs references once --------------------------------------------------


def test_a_connection_made_by_create_connection_takes_an_invoice_with_a_contact_at_once(
    aws: Any, capsys: pytest.CaptureFixture[str], api_module: Any, lambda_context: Any
) -> None:
    project = run(capsys, "create-project", "--name", "Acme SaaS")["project_id"]
    key = run(capsys, "create-api-key", "--project", project)
    connection = run(capsys, "create-connection", "--project", project, "--provider", "sandbox")
    assert connection["references_synced"] == SANDBOX_DIRECTORY

    credentials = {"x-api-key": key["api_key"], "x-connection-token": connection["connection_token"]}
    api = Api(api_module, lambda_context, credentials)
    contact = reference_id(connection["connection_id"], "contact", "C-1001")
    answer = api.create({"contact_id": contact, "line_items": [{"quantity": 1, "unit_price": 10}]})
    assert answer.status == 201, answer.text
    assert answer.json["contact_id"] == contact


def test_create_connection_says_what_it_synced_in_its_human_output(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    project = admin.create_project("P")["project_id"]
    assert admin.main(["create-connection", "--project", project, "--provider", "sandbox"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"references_synced: {json.dumps(SANDBOX_DIRECTORY)}" in lines
    assert any(line.startswith("connection_token: lbc_") for line in lines)


def test_a_failed_first_sync_is_reported_and_the_connection_is_still_made(
    aws: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = admin.create_project("P")["project_id"]
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"access_token": "at", "refresh_token": "rt", "expires_in": 3600}))
    made = run(capsys, "create-connection", "--project", project, "--provider", "xero",
               "--credentials", str(tokens), "--setting", "tenant_id=t-1")  # fmt: skip
    # The template's OAuth app secret is still empty: the sync cannot run, the connection stands.
    assert made["connection_token"].startswith("lbc_")
    assert made["references_error"].startswith("provider_not_configured: Ledgerbridge's OAuth app for xero")
    assert made["next_step"] == f"ledgerbridge-admin sync-references --connection {made['connection_id']}"
    assert "references_synced" not in made
    [listed] = admin.list_connections(project)
    assert listed["connection_id"] == made["connection_id"]


# --- options after the command, and the credentials file's expiry --------------------------------


def test_json_is_accepted_after_the_command_too(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["create-project", "--name", "x", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "x"
    assert admin.main(["--json", "list-connections"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert admin.main(["create-project", "--name", "y"]) == 0
    assert capsys.readouterr().out.startswith("project_id: ")  # without --json anywhere: human output


def test_stack_is_accepted_after_the_command_too(
    aws: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LEDGERBRIDGE_ACCOUNTS_TABLE")
    monkeypatch.delenv("LEDGERBRIDGE_STACK", raising=False)
    assert admin.main(["create-project", "--name", "lost", "--stack", "missing"]) == 1
    assert settings().accounts_table == "missing-accounts"


def create_with_credentials(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tokens: dict[str, Any]
) -> int:
    project = admin.create_project("P")["project_id"]
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"access_token": "at", "refresh_token": "rt", **tokens}))
    return admin.main(["create-connection", "--project", project, "--provider", "xero",
                       "--credentials", str(path), "--setting", "tenant_id=t-1", "--json"])  # fmt: skip


def test_a_credentials_file_with_an_rfc_3339_expires_at_connects(
    aws: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert create_with_credentials(capsys, tmp_path, {"expires_at": "2027-01-15T08:00:00Z"}) == 0
    assert json.loads(capsys.readouterr().out)["connection_token"].startswith("lbc_")


@pytest.mark.parametrize(
    ("tokens", "field"),
    [({"expires_at": "next tuesday"}, "expires_at"), ({"expires_in": "soon"}, "expires_in")],
)
def test_an_unreadable_expiry_exits_2_naming_the_field(
    aws: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path, tokens: dict[str, Any], field: str
) -> None:
    assert create_with_credentials(capsys, tmp_path, tokens) == 2
    captured = capsys.readouterr()
    assert f"ledgerbridge-admin: the credentials file's {field} must be" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
