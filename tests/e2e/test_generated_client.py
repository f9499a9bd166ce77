"""A Python client generated from the served ``/openapi.json`` by openapi-python-client, against the stack.

A SaaS developer may skip Panora's SDK and generate a client from the document Ledgerbridge
serves. This generates one at test time from what the running API answers, and uses it for the
calls such a developer makes first: create an invoice with lines, find it in the listing, read it
back with the ledger's record, create a contact.

Decisions:
- The generator is pinned in the dev extra (openapi-python-client 0.29.1, the newest release that
  installs beside our pydantic and httpx pins) and run as the venv's console script in a
  subprocess, as a developer runs it. ``--meta none`` writes the bare package into a tmp dir,
  which goes on ``sys.path`` for the module only. The venv's bin dir leads PATH so the
  generator's own post-hooks find the pinned ruff (without it they only warn).
- No generation warning is tolerated (``--fail-on-warning`` and none in the output): a warning
  means part of an operation or schema was skipped, so a document change that breaks generated
  clients fails here, with the generator's words.
- Each operation is found where the generator puts it, ``api/<tag>/<operationId>``, derived from
  the served document: a missing tag (``api/default``) or a renamed operationId fails the test.
- The generated client is the developer's, unchanged. It implements no apiKey security schemes,
  so ``x-api-key`` goes as its ``AuthenticatedClient`` header with an empty prefix, and
  ``x-connection-token`` as the parameter every operation documents.
- "Works" means every answer parses into the generated model the document names for its status
  (``raise_on_unexpected_status`` refuses undocumented ones), with no field outside the model
  (attrs models keep unknown keys in ``additional_properties``; free-form objects such as
  ``remote_data`` are all such keys by design), and that every answer the client received (an
  httpx response hook records them) also validates against the served document with the fuzz
  suite's :class:`~tests.fuzz.oracle.Contract`.
- Money: the generated input models type amounts ``float | str`` and httpx cannot encode a
  Decimal, so amounts go as strings ("0.10", "1234567.89") and the request body is checked to
  carry them digit for digit. Answers type amounts ``float`` (the document says number, as
  Panora's does): the test holds that each float's shortest repr is the exact amount the API
  wrote (the raw body read with ``jsonutil.loads``). A unified line carries no amount unless one
  was sent, so the ledger's computed 0.10 x 3 = 0.30 is read from remote_data's lines. A double
  keeps 15 significant digits, which these amounts stay within; the API accepts up to 28, and
  such amounts would come back rounded in this client (a limit of JSON numbers read as floats).
- The session's stack and its sandbox ledger: records other modules create only lengthen the
  listing, which the test pages through with the client's own cursors.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID, uuid4

import attrs
import httpx
import pytest

from ledgerbridge import jsonutil
from tests.e2e.conftest import LocalStack
from tests.fuzz.local_api import Received
from tests.fuzz.oracle import Contract, parse_json

pytestmark = pytest.mark.e2e

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "ledgerbridge_client"
GENERATE_TIMEOUT_SECONDS = 180
CALL_TIMEOUT_SECONDS = 60
PAGE_SIZE = 100
LINES = (  # description, quantity, unit price, the amount the ledger must compute
    ("Pencils", "3", "0.10", Decimal("0.30")),
    ("Annual audit", "1", "1234567.89", Decimal("1234567.89")),
)
ISSUED = datetime(2026, 11, 24, tzinfo=UTC)
MONEY_IN = (("LineItemInput", "unit_price"), ("LineItemInput", "quantity"), ("InvoiceInput", "total_amount"))
MONEY_OUT = (("LineItem", "unit_price"), ("LineItem", "total_amount"), ("Invoice", "total_amount"))
FUNCTION_NAME = re.compile(r"(create|list|retrieve)_[a-z]+(_[a-z]+)*")  # Panora's names: list_invoices


def snake(name: str) -> str:
    """The generator's module name for an operationId or tag: createInvoice -> create_invoice."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


@dataclass(frozen=True)
class Generated:
    document: dict[str, Any]
    output: str  # what the generator printed
    package: ModuleType

    def operations(self) -> dict[str, str]:
        """operationId -> the module the generator should have written for it."""
        return {
            operation["operationId"]: f"{snake(operation['tags'][0])}.{snake(operation['operationId'])}"
            for path_item in self.document["paths"].values()
            for operation in path_item.values()
        }

    def operation(self, operation_id: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{self.operations()[operation_id]}")

    @property
    def models(self) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.models")


def generate(document: Path, package: Path) -> str:
    """Run the pinned generator like a developer; its output when it succeeded."""
    env = {**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(GENERATOR), "generate", "--path", str(document), "--output-path", str(package),
               "--meta", "none", "--fail-on-warning"]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_SECONDS, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"openapi-python-client failed:\n{output}"
    return output


@pytest.fixture(scope="module")
def generated(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    served = httpx.get(f"{local_stack.api_url}/openapi.json", timeout=CALL_TIMEOUT_SECONDS)
    assert served.status_code == 200, served.text
    root = tmp_path_factory.mktemp("generated_client")
    (root / "openapi.json").write_bytes(served.content)
    output = generate(root / "openapi.json", root / PACKAGE)
    sys.path.insert(0, str(root))
    try:
        yield Generated(parse_json(served.content), output, importlib.import_module(PACKAGE))
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def undeclared_fields(value: Any, where: str = "") -> list[str]:
    """JSON pointers of answer fields the generated models did not declare (kept as raw extras)."""
    if isinstance(value, list):
        return [
            found for index, item in enumerate(value) for found in undeclared_fields(item, f"{where}/{index}")
        ]
    if not attrs.has(type(value)):
        return []
    declared = [field.name for field in attrs.fields(type(value)) if field.name != "additional_properties"]
    if not declared:  # a free-form object (remote_data, field_mappings): its keys are the data
        return []
    extras = [f"{where}/{key}" for key in value.additional_properties]
    return extras + [
        found for name in declared for found in undeclared_fields(getattr(value, name), f"{where}/{name}")
    ]


class Developer:
    """The generated client as a developer holds it, recording every answer it receives."""

    def __init__(self, stack: LocalStack, generated: Generated) -> None:
        self.generated, self.connection_token = generated, stack.connection_token
        self.received: list[httpx.Response] = []
        self.client = generated.package.AuthenticatedClient(
            base_url=stack.api_url,
            token=stack.api_key,
            prefix="",
            auth_header_name="x-api-key",
            raise_on_unexpected_status=True,
            timeout=httpx.Timeout(CALL_TIMEOUT_SECONDS),
            httpx_args={"event_hooks": {"response": [self._record]}},
        )

    def _record(self, response: httpx.Response) -> None:
        response.read()
        self.received.append(response)

    def call(self, operation_id: str, model: str, **arguments: Any) -> Any:
        """One operation through the generated module; the answer, parsed into ``model``."""
        module = self.generated.operation(operation_id)
        answer = module.sync_detailed(
            client=self.client, x_connection_token=self.connection_token, **arguments
        )
        expected = getattr(self.generated.models, model)
        assert isinstance(answer.parsed, expected), f"{operation_id}: {answer.status_code} {answer.content!r}"
        assert undeclared_fields(answer.parsed) == [], f"{operation_id} answered fields its model lacks"
        return answer

    def off_contract(self) -> list[str]:
        """Every answer received that the served document does not allow, with the reasons."""
        contract = Contract(self.generated.document)
        problems = []
        for response in self.received:
            request = response.request
            operation = contract.operation(request.method, request.url.raw_path.decode())
            assert operation is not None, f"{request.method} {request.url} is not a documented operation"
            received = Received(response.status_code, tuple(response.headers.items()), response.content)
            found = contract.problems(operation, received, parse_json(response.content))
            problems += [f"{request.method} {request.url.path}: {problem}" for problem in found]
        return problems

    def sent_bodies(self) -> list[Any]:
        return [jsonutil.loads(r.request.content) for r in self.received if r.request.content]


@pytest.fixture
def developer(local_stack: LocalStack, generated: Generated) -> Iterator[Developer]:
    developer = Developer(local_stack, generated)
    with developer.client:
        yield developer
    assert developer.received, "the test made no call through the generated client"
    assert developer.off_contract() == []


def exact(amount: float | str | None) -> Decimal:
    """The amount a generated model holds, as the decimal it stands for (a float by its shortest repr)."""
    assert amount is not None
    return Decimal(repr(amount)) if isinstance(amount, float) else Decimal(amount)


def list_all(developer: Developer, operation_id: str, page_model: str) -> list[Any]:
    """Every record of a listing, following the generated page model's next_cursor."""
    records, cursor = [], None
    while True:
        page = developer.call(operation_id, page_model, limit=PAGE_SIZE, cursor=cursor).parsed
        records += page.data
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


def test_the_generator_writes_every_operation_without_a_warning(generated: Generated) -> None:
    assert "warning" not in generated.output.lower(), generated.output
    operations = generated.operations()
    assert operations, "the served document has no operations"
    for operation_id, module in operations.items():
        functions = generated.operation(operation_id)
        assert callable(functions.sync_detailed), module
        assert not module.startswith("default."), f"{operation_id} has no tag"
        assert FUNCTION_NAME.fullmatch(module.split(".")[1]), f"{operation_id} generates {module}"


def test_money_goes_out_as_exact_text_and_comes_back_as_numbers(generated: Generated) -> None:
    for model, field in MONEY_IN:
        annotation = attrs.fields_dict(getattr(generated.models, model))[field].type
        assert "str" in annotation, (
            f"{model}.{field} is {annotation}: a generated client cannot send it exactly"
        )
    for model, field in MONEY_OUT:
        assert "float" in attrs.fields_dict(getattr(generated.models, model))[field].type, f"{model}.{field}"


def test_an_invoice_with_lines_is_created_listed_and_read_back_exactly(developer: Developer) -> None:
    models = developer.generated.models
    customer = next(c for c in list_all(developer, "listContacts", "ContactPage") if c.is_customer)
    body = models.InvoiceInput(
        type_=models.InvoiceType.ACCOUNTS_RECEIVABLE,
        contact_id=UUID(customer.id),
        issue_date=ISSUED,
        currency="USD",
        memo="Generated-client invoice",
        line_items=[
            models.LineItemInput(description=description, quantity=quantity, unit_price=price)
            for description, quantity, price, _ in LINES
        ],
    )
    created = developer.call("createInvoice", "Invoice", body=body, remote_data="true")
    assert created.status_code == 201, created.content
    [sent] = [sent for sent in developer.sent_bodies() if "line_items" in sent]
    assert [(line["quantity"], line["unit_price"]) for line in sent["line_items"]] == [
        (quantity, price) for _, quantity, price, _ in LINES
    ]
    invoice = created.parsed
    assert invoice.sync_status == models.SyncStatus.SYNCED
    assert invoice.issue_date == ISSUED
    assert_exact_lines(invoice, jsonutil.loads(created.content))

    listed = [
        record for record in list_all(developer, "listInvoices", "InvoicePage") if record.id == invoice.id
    ]
    assert [record.memo for record in listed] == ["Generated-client invoice"]

    read = developer.call("retrieveInvoice", "Invoice", id=invoice.id, remote_data="true")
    assert read.parsed.remote_id == invoice.remote_id
    assert isinstance(read.parsed.remote_data, models.InvoiceRemoteDataType0)
    assert read.parsed.remote_data.additional_properties, "remote_data=true brought no ledger record"
    assert_exact_lines(read.parsed, jsonutil.loads(read.content))


def assert_exact_lines(invoice: Any, raw: dict[str, Any]) -> None:
    """The generated model's amounts are the API's digits (``raw``: the body read with Decimals):
    each line's quantity and unit price, the ledger's line amounts in remote_data, the total."""
    lines = [(exact(line.quantity), exact(line.unit_price)) for line in invoice.line_items]
    assert lines == [(Decimal(quantity), Decimal(price)) for _, quantity, price, _ in LINES]
    assert lines == [(line["quantity"], line["unit_price"]) for line in raw["line_items"]]
    ledger_lines = invoice.remote_data.additional_properties["lines"]
    assert [exact(line["amount"]) for line in ledger_lines] == [total for *_, total in LINES]
    assert [line["amount"] for line in raw["remote_data"]["lines"]] == [total for *_, total in LINES]
    assert exact(invoice.total_amount) == raw["total_amount"] == Decimal("1234568.19")


def test_a_contact_is_created_once_per_idempotency_key_and_read_back(developer: Developer) -> None:
    models = developer.generated.models
    body = models.ContactInput(
        name="Generated Client Customer", is_customer=True, email_address="ap@gen.example"
    )
    key = f"generated-client-{uuid4()}"
    created = developer.call("createContact", "Contact", body=body, idempotency_key=key)
    assert created.status_code == 201, created.content
    contact = created.parsed
    assert (contact.name, contact.is_customer, contact.email_address) == (
        "Generated Client Customer", True, "ap@gen.example",
    )  # fmt: skip
    replayed = developer.call("createContact", "Contact", body=body, idempotency_key=key)
    assert (replayed.parsed.id, replayed.headers.get("idempotent-replayed")) == (contact.id, "true")
    read = developer.call("retrieveContact", "Contact", id=contact.id)
    assert (read.parsed.id, read.parsed.name) == (contact.id, "Generated Client Customer")
