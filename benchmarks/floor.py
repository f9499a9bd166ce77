"""The floor of an invoice create: what any correct handler must do, with bare boto3.

``make bench`` times it cold (a fresh process that also imports boto3, creates its client and
imports this module, so pydantic and ``ledgerbridge.models``) and warm, against the same
DynamoDB (and, for QuickBooks, the same ledger) as the handler.

- Sandbox (``create`` with ``books_table``): validate the body with the project's model, store it
  (PutItem), record it in the sandbox's books (one conditional PutItem: the sandbox is a
  ledger whose books are a DynamoDB table, so its write is what QuickBooks' HTTP POST is on
  the QuickBooks path, work no correct create can skip), record the outcome (UpdateItem).
  Without ``books_table`` it leaves the books' write out: the floor as the performance issue
  first wrote it, which ``make bench`` prints the sandbox's ratios to as well.
- QuickBooks (``create_at_quickbooks``): validate, store (PutItem), map the invoice to a
  QuickBooks Invoice (customer, dates, currency, one sales line per line item) and POST it
  with ``requestid`` through the same httpx client and ledger stub as the handler, read the
  created Invoice, record it (UpdateItem: status, QuickBooks' id, its answer as it came).
  What a warm container already holds is given, not looked up: the access token (the
  handler's token source keeps it in memory too) and the QuickBooks ids of the customer and
  item. The handler resolves the invoice's ``contact_id`` to QuickBooks' customer on every
  create (a read): that read counts against the handler, since a reference id names one
  ledger record for good and a container could keep what it found.
- An Idempotency-Key changes nothing here: its record counts against the handler.
- The cold floor's first create leaves the books' write out: one call more would be ~1 ms of
  its ~450, and the cold ratio is the stricter for it.

This module imports nothing that the cold floor should not pay for (no httpx: the warm side
passes its client in).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ledgerbridge import jsonutil
from ledgerbridge.models import InvoiceInput


def create(
    dynamodb: Any, table: str, connection_id: str, body: str | bytes, books_table: str | None = None
) -> str:
    """Store, (with ``books_table``) record in the sandbox's books, settle."""
    invoice = InvoiceInput.model_validate(jsonutil.loads(body))
    key = {"connection_id": {"S": connection_id}, "id": {"S": str(uuid.uuid4())}}
    document = invoice.model_dump_json()
    dynamodb.put_item(TableName=table, Item={**key, "invoice": {"S": document}})
    if books_table is not None:
        dynamodb.put_item(
            TableName=books_table,
            Item={
                "pk": {"S": f"SANDBOX#{connection_id}"},
                "sk": {"S": f"INVOICE#{key['id']['S'][:8]}"},
                "external_id": key["id"],
                "record": {"S": document},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET sync_status = :s",
        ExpressionAttributeValues={":s": {"S": "synced"}},
    )
    return jsonutil.dumps({"id": key["id"]["S"]})


@dataclass(frozen=True)
class QuickBooks:
    """Where the QuickBooks floor posts, and what a warm container holds for it."""

    invoice_url: str  # https://…/v3/company/<realm>/invoice
    minor_version: str  # the API version the handler pins
    access_token: str
    customer_id: str
    item_id: str


def quickbooks_invoice(invoice: InvoiceInput, ledger: QuickBooks) -> dict[str, Any]:
    lines = [
        {
            "DetailType": "SalesItemLineDetail",
            "Amount": line.quantity * line.unit_price,
            "Description": line.description,
            "SalesItemLineDetail": {
                "ItemRef": {"value": ledger.item_id},
                "Qty": line.quantity,
                "UnitPrice": line.unit_price,
            },
        }
        for line in invoice.line_items or []
    ]
    body = {"CustomerRef": {"value": ledger.customer_id}, "Line": lines, "PrivateNote": invoice.memo}
    if invoice.currency:
        body["CurrencyRef"] = {"value": invoice.currency}
    if invoice.issue_date:
        body["TxnDate"] = invoice.issue_date.date().isoformat()
    if invoice.due_date:
        body["DueDate"] = invoice.due_date.date().isoformat()
    return body


def create_at_quickbooks(
    dynamodb: Any, http: Any, table: str, connection_id: str, body: str | bytes, ledger: QuickBooks
) -> str:
    invoice = InvoiceInput.model_validate(jsonutil.loads(body))
    invoice_id = str(uuid.uuid4())
    key = {"connection_id": {"S": connection_id}, "id": {"S": invoice_id}}
    dynamodb.put_item(TableName=table, Item={**key, "invoice": {"S": invoice.model_dump_json()}})
    response = http.post(
        ledger.invoice_url,
        params={"minorversion": ledger.minor_version, "requestid": invoice_id},
        content=jsonutil.dumps(quickbooks_invoice(invoice, ledger)),
        headers={
            "Authorization": f"Bearer {ledger.access_token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
    )
    response.raise_for_status()
    remote_id = jsonutil.loads(response.content)["Invoice"]["Id"]
    dynamodb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET sync_status = :s, remote_id = :r, remote_data = :d",
        ExpressionAttributeValues={":s": {"S": "synced"}, ":r": {"S": remote_id}, ":d": {"S": response.text}},
    )
    return jsonutil.dumps({"id": invoice_id, "remote_id": remote_id})
