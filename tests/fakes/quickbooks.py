"""A stateful QuickBooks Online Accounting API (v3) and Intuit token endpoint, for tests.

Built from the recorded exchanges in ``tests/fixtures/providers/quickbooks`` (record shapes,
names, the company's customers, vendors, items and accounts) and QuickBooks' documentation
(Fault bodies, ``requestid`` replay, query paging, error codes). Use it with
``httpx.MockTransport(fake.handle)``; it has no pytest dependency so it can also sit behind a
real HTTP server.

What it models:
- ``GET /connect/oauth2``: Intuit's consent screen (tests/fakes/consent.py) for the client id
  and redirect URI given, requiring ``REQUIRED_SCOPES`` and no PKCE (Intuit's discovery
  documents list no ``code_challenge_methods_supported``); approving redirects with ``code``,
  ``state`` and the company's ``realmId``, as Intuit does.
- ``POST /oauth2/v1/tokens/bearer`` with HTTP Basic client auth: ``grant_type=refresh_token``
  issues a new access token and a new refresh token and (``rotate_refresh_tokens``) retires the
  one used; ``grant_type=authorization_code`` exchanges a consent's code once. Both answer
  Intuit's token response (``token_type``, ``expires_in``, ``refresh_token``,
  ``x_refresh_token_expires_in``, ``access_token``). Errors as Intuit answers them: 401
  ``invalid_client``, 400 ``invalid_grant``.
- ``POST /v2/oauth2/tokens/revoke``: HTTP Basic client auth and a JSON ``{"token": ...}``, as
  Intuit's SDKs send it. Revoking either token of a grant (one consent and the refreshes that
  followed it) ends every token of that grant; 200 whatever the token (RFC 7009 2.2), 401
  ``invalid_client``, 400 ``invalid_request`` without a JSON token. Revoked tokens are kept in
  ``revoked``.
- ``GET /v3/company/{realm}/companyinfo/{realm}``: the company (get-company-info.json).
- Bearer tokens on every API call: unknown or expired -> 401 ``AuthenticationFault``; another
  company's realm -> 403 ``AuthorizationFault``.
- ``POST /v3/company/{realm}/invoice|bill``: first the body is checked against Intuit's XSD for
  the entity (tests/support/quickbooks_xsd.py: element names, counts, leaf types, enumerations,
  documented lengths); any mismatch is a 400 ValidationFault, code 2010 "Request has invalid
  or unsupported property", one error per problem (QuickBooks' wording for unknown
  properties; the details are the checker's). Then QuickBooks' own rules with its Fault shape
  and codes (missing/unknown references, Amount != Qty x UnitPrice, DocNumber too long or
  reused, bad tax codes), then a stored record shaped like the recorded ones. A repeated
  ``requestid`` gets the first response again (success or fault) and creates nothing.
- Currencies: the company's home currency is USD. ``ExchangeRate`` is QuickBooks' own
  convention (home units per one unit of the transaction's currency), kept as sent; a
  foreign-currency transaction without one gets the day's rate from ``DAY_RATES`` (QuickBooks
  uses its own feed), and ``HomeTotalAmt`` = TotalAmt x ExchangeRate to the cent (half up).
  A home-currency transaction has no rate unless one is sent (then it is 1), as in the
  recorded company.
- ``POST /v3/company/{realm}/customer|vendor``: the body checked against the XSD as above,
  then QuickBooks' rules: a ``DisplayName`` is required (2020) and unique across customers
  and vendors (6240 "Duplicate Name Exists Error"); the new record joins the list its query
  reads, with ``requestid`` replay as for transactions.
- ``GET /v3/company/{realm}/invoice|bill/{id}``.
- ``GET|POST /v3/company/{realm}/query``: ``select * from <Entity> [STARTPOSITION n]
  [MAXRESULTS m]`` (m capped at 1000), an empty page answered as ``{"QueryResponse": {}}``.
- Fault injection on API calls (``/v3/...``, not the token endpoint), in FIFO order:
  ``fail_next`` (e.g. 429 + Retry-After, 503), ``answer_next`` (any canned reply, e.g. a
  recorded one), ``timeout_next`` (httpx.ReadTimeout before, or after, the fake did the work).

Not modelled: currencies a customer or vendor is not set up for, sales tax beyond one flat
rate on lines coded ``TAX``, WHERE clauses in queries, updates. Unknown custom field
DefinitionIds are dropped, not refused.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from ledgerbridge import jsonutil
from tests.fakes.consent import ConsentScreen, invalid_grant
from tests.support.quickbooks_xsd import xsd_errors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "providers" / "quickbooks"
REALM_ID = "9341457021722202"
TOKEN_PATH = "/oauth2/v1/tokens/bearer"
AUTHORIZE_PATH = "/connect/oauth2"
REVOKE_PATH = "/v2/oauth2/tokens/revoke"
REDIRECT_URI = "https://ledgerbridge.test/connect/callback"
# What Intuit's consent screen insists on for an Accounting API app.
REQUIRED_SCOPES = ("com.intuit.quickbooks.accounting",)
COMPANY_TZ = timezone(timedelta(hours=-7))  # the recorded company answers in US Pacific time
HOME_CURRENCY = "USD"
# The fake day's rates, QuickBooks' way round: US dollars per one unit of the currency.
DAY_RATES = {"EUR": Decimal("1.08"), "GBP": Decimal("1.27"), "CAD": Decimal("0.73")}
CENT = Decimal("0.01")
CURRENCY_NAMES = {
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
}
LIST_FIXTURES = {
    "Customer": "list-customers.json",
    "Vendor": "list-vendors.json",
    "Item": "list-items.json",
    "Account": "list-accounts.json",
    "Class": "list-classes.json",
    "Department": "list-departments.json",
}
LINE_DETAILS = {
    "Invoice": {"SalesItemLineDetail", "DiscountLineDetail", "SubTotalLineDetail", "DescriptionOnly"},
    "Bill": {"AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail"},
}
_API_PATH = re.compile(
    r"^/v3/company/(?P<realm>[^/]+)/(?P<resource>invoice|bill|customer|vendor|query|companyinfo)"
    r"(?:/(?P<id>[^/]+))?$"
)
ENTITIES = {"invoice": "Invoice", "bill": "Bill", "customer": "Customer", "vendor": "Vendor"}
_QUERY = re.compile(
    r"^\s*select\s+\*\s+from\s+(?P<entity>\w+)"
    r"(?:\s+startposition\s+(?P<start>\d+))?(?:\s+maxresults\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE,
)


def load_fixture(name: str) -> dict[str, Any]:
    """One recorded file (exact decimals)."""
    return jsonutil.loads((FIXTURES / name).read_text())


def recorded_response(name: str) -> dict[str, Any]:
    """The response body of a file's first exchange."""
    return load_fixture(name)["exchanges"][0]["response"]["body"]


def _fault(errors: list[tuple[str, str, str]], fault_type: str = "ValidationFault") -> dict[str, Any]:
    return {
        "Fault": {
            "Error": [
                {"Message": message, "Detail": detail, "code": code} for code, message, detail in errors
            ],
            "type": fault_type,
        },
        "time": _now_text(millis=True),
    }


def _now_text(millis: bool = False) -> str:
    now = datetime.now(COMPANY_TZ)
    return now.isoformat(timespec="milliseconds" if millis else "seconds")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json", **(headers or {})},
        content=jsonutil.dumps(body).encode(),
    )


def _exchange_rate(payload: dict[str, Any]) -> Decimal | None:
    """The rate QuickBooks keeps: as sent (1 in the home currency), or the day's for a foreign one."""
    code = _value(payload.get("CurrencyRef")) or HOME_CURRENCY
    given = payload.get("ExchangeRate")
    if code == HOME_CURRENCY:
        return Decimal(1) if given is not None else None
    return Decimal(str(given)) if given is not None else DAY_RATES.get(code)


def _value(ref: Any) -> str | None:
    return str(ref["value"]) if isinstance(ref, dict) and ref.get("value") is not None else None


INVALID_REFERENCE = (
    "2500",
    "Invalid Reference Id",
    "Invalid Reference Id : Something you're trying to use has been made inactive. "
    "Check the fields with accounts.",
)


def _missing(name: str) -> tuple[str, str, str]:
    return (
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {name} is missing in the request",
    )


@dataclass
class _Injected:
    kind: str  # "reply" | "timeout"
    response: httpx.Response | None = None
    after_processing: bool = False


class FakeQuickBooks:
    """One QuickBooks company plus Intuit's token endpoint; see the module docstring."""

    def __init__(
        self,
        realm_id: str = REALM_ID,
        client_id: str = "qb-client-id",
        client_secret: str = "qb-client-secret",
        access_token: str = "qb-access-0",
        refresh_token: str = "qb-refresh-0",
        custom_fields: dict[str, str] | None = None,
        tax_rate: Decimal = Decimal("0.08"),
        rotate_refresh_tokens: bool = True,
        today: Callable[[], date] = lambda: datetime.now(COMPANY_TZ).date(),
        validate_schema: bool = True,
        redirect_uri: str = REDIRECT_URI,
    ):
        self.realm_id, self.client_id, self.client_secret = realm_id, client_id, client_secret
        self.access_tokens = {access_token}
        self.refresh_tokens = {refresh_token}
        self.grants = {access_token: 0, refresh_token: 0}  # token -> the consent it descends from
        self.revoked: list[str] = []
        self.company = dict(recorded_response("get-company-info.json")["CompanyInfo"])
        self.consent = ConsentScreen(
            path=AUTHORIZE_PATH,
            client_id=client_id,
            redirect_uri=redirect_uri,
            required_scopes=REQUIRED_SCOPES,
            pkce=False,
            extras=lambda: {"realmId": self.realm_id},
        )
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.custom_fields = custom_fields if custom_fields is not None else {"1": "Crew #", "2": "Sales Rep"}
        self.tax_rate, self.today, self.validate_schema = tax_rate, today, validate_schema
        self.requests: list[httpx.Request] = []
        self.lists: dict[str, list[dict[str, Any]]] = {
            entity: list(recorded_response(name)["QueryResponse"].get(entity, []))
            for entity, name in LIST_FIXTURES.items()
        }
        self.disabled_lists: set[str] = set()
        self.transactions: dict[str, dict[str, dict[str, Any]]] = {"Invoice": {}, "Bill": {}}
        self._replies: dict[str, tuple[int, Any]] = {}
        self._injected: deque[_Injected] = deque()
        self._next_txn_id = 200
        self._next_doc_number = 1044
        self._tokens_issued = 0
        self._lock = threading.Lock()  # a threaded HTTP server may call handle() concurrently

    # -- test controls -------------------------------------------------------------------

    def fail_next(self, status: int, headers: dict[str, str] | None = None, times: int = 1) -> None:
        """The next ``times`` API calls answer ``status`` with QuickBooks' body for it."""
        if status == 429:
            body = _fault(
                [
                    (
                        "3001",
                        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
                        "The request limit was reached.",
                    )
                ],
                "ThrottlingFault",
            )
        else:
            body = _fault(
                [
                    (
                        "10000",
                        "An application error has occurred while processing your request",
                        "System Failure Error",
                    )
                ],
                "SystemFault",
            )
        for _ in range(times):
            self.answer_next(status, body, headers)

    def answer_next(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """The next API call gets exactly this answer (and is not processed)."""
        self._injected.append(_Injected("reply", response=_json(status, body, headers)))

    def timeout_next(self, times: int = 1, after_processing: bool = False) -> None:
        """The next API calls raise httpx.ReadTimeout; ``after_processing``: done, but the answer is lost."""
        for _ in range(times):
            self._injected.append(_Injected("timeout", after_processing=after_processing))

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        self.refresh_tokens.clear()

    def disable_list(self, entity: str) -> None:
        """Queries of ``entity`` answer as for a plan without that feature (e.g. Class)."""
        self.disabled_lists.add(entity)

    def created(self, entity: str = "Invoice") -> list[dict[str, Any]]:
        return list(self.transactions[entity].values())

    # -- HTTP ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.consent.handles(request):
            return self.consent.handle(request)
        if request.url.path == TOKEN_PATH:
            return self._token(request)
        if request.url.path == REVOKE_PATH:
            return self._revoke(request)
        if self._injected and request.url.path.startswith("/v3/"):
            injected = self._injected.popleft()
            if injected.kind == "reply":
                assert injected.response is not None
                return injected.response
            if not injected.after_processing:
                raise httpx.ReadTimeout("timed out (injected)", request=request)
            self._api(request)
            raise httpx.ReadTimeout("timed out after processing (injected)", request=request)
        return self._api(request)

    def _api(self, request: httpx.Request) -> httpx.Response:
        match = _API_PATH.match(request.url.path)
        if match is None:
            return _json(404, {"error": "not found", "path": request.url.path})
        denied = self._check_auth(request, match["realm"])
        if denied is not None:
            return denied
        resource, txn_id = match["resource"], match["id"]
        if resource == "query" and request.method in ("GET", "POST") and txn_id is None:
            return self._query(request)
        if resource == "companyinfo" and request.method == "GET" and txn_id is not None:
            return self._company_info(txn_id)
        entity = ENTITIES.get(resource)  # CompanyInfo is only read here
        if entity is not None and request.method == "GET" and txn_id is not None:
            return self._read(entity, txn_id)
        if entity is not None and request.method == "POST" and txn_id is None:
            return self._create(entity, request)
        return _json(
            405, _fault([("500", "Unsupported Operation", f"{request.method} is not supported here")])
        )

    def _check_auth(self, request: httpx.Request, realm: str) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        if token is None or token not in self.access_tokens:
            message = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
            body = _fault([("3200", message, "Token expired or invalid")], "AuthenticationFault")
            return _json(401, body, {"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"'})
        if realm != self.realm_id:
            message = "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
            return _json(403, _fault([("3100", message, "")], "AuthorizationFault"))
        return None

    # -- token endpoint ------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST" or not self._client_authenticated(request):
            return _json(401, {"error": "invalid_client"})
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") == "authorization_code":
            refusal = self.consent.exchange(form, self.client_id)  # Basic auth named this client
            if refusal is not None:
                return invalid_grant(refusal)
            return self._issue(grant=max(self.grants.values(), default=0) + 1)
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        used = form.get("refresh_token")
        if used not in self.refresh_tokens:
            return _json(400, {"error": "invalid_grant"})
        if self.rotate_refresh_tokens:
            self.refresh_tokens.discard(used)
        return self._issue(grant=self.grants.get(used, 0))

    def _issue(self, grant: int) -> httpx.Response:
        """A new access and refresh token of ``grant``, in Intuit's token response."""
        self._tokens_issued += 1
        access, refresh = f"qb-access-{self._tokens_issued}", f"qb-refresh-{self._tokens_issued}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        self.grants.update({access: grant, refresh: grant})
        return _json(
            200,
            {
                "token_type": "bearer",
                "expires_in": 3600,
                "refresh_token": refresh,
                "x_refresh_token_expires_in": 8726400,
                "access_token": access,
            },
        )

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        """Intuit's revocation: one token ends its whole grant (the app is disconnected)."""
        if request.method != "POST" or not self._client_authenticated(request):
            return _json(401, {"error": "invalid_client"})
        try:
            body = jsonutil.loads(request.content) if request.content else None
        except ValueError:
            body = None
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            return _json(400, {"error": "invalid_request"})
        grant = self.grants.get(token)
        if grant is not None:
            ended = {known for known, of in self.grants.items() if of == grant}
            self.access_tokens -= ended
            self.refresh_tokens -= ended
        self.revoked.append(token)
        return httpx.Response(200)

    def _client_authenticated(self, request: httpx.Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[len("Basic ") :]).decode()
        except ValueError:
            return False
        return decoded == f"{self.client_id}:{self.client_secret}"

    # -- queries -----------------------------------------------------------------------------

    def _query(self, request: httpx.Request) -> httpx.Response:
        text = request.url.params.get("query") or request.content.decode()
        match = _QUERY.match(text or "")
        entity = next(
            (name for name in self.lists if match and name.lower() == match["entity"].lower()), None
        )
        if match is None or entity is None:
            return _json(
                400,
                _fault(
                    [("4000", "Error parsing query", f"QueryParserError: Encountered an error in {text!r}")]
                ),
            )
        if entity in self.disabled_lists:
            detail = "You do not have permission to access this feature."
            return _json(400, _fault([("5020", "Permission Denied Error", detail)]))
        start = max(1, int(match["start"] or 1))
        size = min(1000, int(match["max"] or 100))
        active = [record for record in self.lists[entity] if record.get("Active", True)]
        page = active[start - 1 : start - 1 + size]
        result: dict[str, Any] = (
            {entity: page, "startPosition": start, "maxResults": len(page)} if page else {}
        )
        return _json(200, {"QueryResponse": result, "time": _now_text(millis=True)})

    def _company_info(self, company_id: str) -> httpx.Response:
        """CompanyInfo is read by the realm id itself; any other id is not this company."""
        if company_id != self.realm_id:
            detail = f"Object Not Found : CompanyInfo {company_id}"
            return _json(400, _fault([("610", "Object Not Found", detail)]))
        return _json(200, {"CompanyInfo": self.company, "time": _now_text(millis=True)})

    def _read(self, entity: str, txn_id: str) -> httpx.Response:
        record = self.transactions[entity].get(txn_id)
        if record is None:
            detail = "Object Not Found : Another user has deleted this transaction."
            return _json(400, _fault([("610", "Object Not Found", detail)]))
        return _json(200, {entity: record, "time": _now_text(millis=True)})

    # -- creating invoices and bills ----------------------------------------------------------

    def _create(self, entity: str, request: httpx.Request) -> httpx.Response:
        request_id = request.url.params.get("requestid")
        if request_id is not None and request_id in self._replies:
            status, body = self._replies[request_id]
            return _json(status, body)
        status, body = self._process(entity, request)
        if request_id is not None:
            self._replies[request_id] = (status, body)
        return _json(status, body)

    def _process(self, entity: str, request: httpx.Request) -> tuple[int, Any]:
        try:
            payload = jsonutil.loads(request.content)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            detail = "Request has invalid or unsupported property"
            return 400, _fault([("2010", detail, "Request body is not a JSON object")])
        problems = xsd_errors(payload, entity) if self.validate_schema else []
        if problems:
            return 400, _fault([("2010", "Request has invalid or unsupported property", p) for p in problems])
        if entity in ("Customer", "Vendor"):
            return self._create_name(entity, payload)
        errors = self._validate(entity, payload)
        if errors:
            return 400, _fault(errors)
        record = self._record(entity, payload)
        self.transactions[entity][record["Id"]] = record
        return 200, {entity: record, "time": _now_text(millis=True)}

    def _create_name(self, entity: str, payload: dict[str, Any]) -> tuple[int, Any]:
        """A new Customer or Vendor, listed by later queries."""
        name = payload.get("DisplayName")
        if not name:
            return 400, _fault([_missing("DisplayName")])
        taken = next(
            (r for lst in ("Customer", "Vendor") for r in self.lists[lst] if r.get("DisplayName") == name),
            None,
        )
        if taken is not None:
            detail = f"The name supplied already exists. : Id={taken['Id']}"
            return 400, _fault([("6240", "Duplicate Name Exists Error", detail)])
        self._next_txn_id += 1
        now = _now_text()
        record = {
            **payload,
            "domain": "QBO",
            "sparse": False,
            "Id": str(self._next_txn_id),
            "SyncToken": "0",
            "MetaData": {"CreateTime": now, "LastUpdatedTime": now},
            "FullyQualifiedName": name,
            "PrintOnCheckName": name,
            "Active": True,
            "Balance": 0,
            "CurrencyRef": self._currency(payload),
        }
        self.lists[entity].append(record)
        return 200, {entity: record, "time": _now_text(millis=True)}

    def _find(self, entity: str, record_id: str | None) -> dict[str, Any] | None:
        return next((record for record in self.lists[entity] if record["Id"] == record_id), None)

    def _validate(self, entity: str, payload: dict[str, Any]) -> list[tuple[str, str, str]]:
        errors: list[tuple[str, str, str]] = []
        contact_key, contact_list = (
            ("CustomerRef", "Customer") if entity == "Invoice" else ("VendorRef", "Vendor")
        )
        if _value(payload.get(contact_key)) is None:
            errors.append(_missing(contact_key))
        elif self._find(contact_list, _value(payload[contact_key])) is None:
            errors.append(INVALID_REFERENCE)
        errors.extend(self._validate_doc_number(entity, payload.get("DocNumber")))
        for key, entity_list in (("DepartmentRef", "Department"), ("ClassRef", "Class")):
            if key in payload and self._find(entity_list, _value(payload[key])) is None:
                errors.append(INVALID_REFERENCE)
        lines = payload.get("Line")
        if not isinstance(lines, list) or not lines:
            errors.append(_missing("Line"))
            return errors
        for line in lines:
            errors.extend(self._validate_line(entity, line))
        return errors

    def _validate_doc_number(self, entity: str, number: Any) -> list[tuple[str, str, str]]:
        if number is None:
            return []
        if len(str(number)) > 21:
            return [
                (
                    "2050",
                    "String length is either shorter or longer than supported by specification",
                    f"String length specified does not match the supported length. Min:0 Max:21 "
                    f"supplied length:{len(str(number))}",
                )
            ]
        if entity != "Invoice":
            return []  # QuickBooks lets bills repeat a vendor's reference number
        taken = next((r for r in self.transactions["Invoice"].values() if r.get("DocNumber") == number), None)
        if taken is None:
            return []
        detail = (
            "Duplicate Document Number Error : You must specify a different number. This number has already "
            f"been used. DocNumber={number} is assigned to TxnType=Invoice with TxnId={taken['Id']}"
        )
        return [("6140", "Duplicate Document Number Error", detail)]

    def _validate_line(self, entity: str, line: Any) -> list[tuple[str, str, str]]:
        detail_type = line.get("DetailType") if isinstance(line, dict) else None
        if detail_type not in LINE_DETAILS[entity]:
            message = "Request has invalid or unsupported property"
            return [("2010", message, f"Property Name:{detail_type} specified is unsupported or invalid")]
        if detail_type == "SubTotalLineDetail":
            return []
        if line.get("Amount") is None:
            return [_missing("Line.Amount")]
        detail = line.get(detail_type) or {}
        errors = self._validate_refs(detail_type, detail)
        qty, price = detail.get("Qty"), detail.get("UnitPrice")
        if (
            qty is not None
            and price is not None
            and Decimal(str(qty)) * Decimal(str(price)) != line["Amount"]
        ):
            errors.append(
                (
                    "6070",
                    "Amount calculation incorrect in the request",
                    f"Amount is not equal to Qty * UnitPrice. Supplied value:{line['Amount']}",
                )
            )
        tax_code = _value(detail.get("TaxCodeRef"))
        if tax_code is not None and tax_code not in ("TAX", "NON"):
            errors.append(
                (
                    "6100",
                    "Invalid Line TaxCode in the request",
                    f"Valid Line TaxCodes for US should be TAX or NON. Supplied value:{tax_code}",
                )
            )
        return errors

    def _validate_refs(self, detail_type: str, detail: dict[str, Any]) -> list[tuple[str, str, str]]:
        required = {
            "SalesItemLineDetail": ("ItemRef", "Item"),
            "ItemBasedExpenseLineDetail": ("ItemRef", "Item"),
            "AccountBasedExpenseLineDetail": ("AccountRef", "Account"),
        }.get(detail_type)
        errors = []
        if required is not None:
            key, entity_list = required
            if key not in detail:
                errors.append(_missing(f"Line.{detail_type}.{key}"))
            elif self._find(entity_list, _value(detail[key])) is None:
                errors.append(INVALID_REFERENCE)
        if "ClassRef" in detail and self._find("Class", _value(detail["ClassRef"])) is None:
            errors.append(INVALID_REFERENCE)
        return errors

    def _named(self, entity_list: str, ref: Any, field: str = "Name") -> dict[str, str]:
        record = self._find(entity_list, _value(ref)) or {}
        return {"value": str(_value(ref)), "name": str(record.get(field) or record.get("Name") or "")}

    def _record(self, entity: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._next_txn_id += 1
        now = _now_text()
        txn_date = payload.get("TxnDate") or self.today().isoformat()
        lines, amounts, taxable = self._lines(entity, payload["Line"])
        sub_total = sum(amounts, Decimal(0))
        record: dict[str, Any] = {
            "domain": "QBO",
            "sparse": False,
            "Id": str(self._next_txn_id),
            "SyncToken": "0",
            "MetaData": {
                "CreateTime": now,
                "LastModifiedByRef": {"value": "9341457021722234"},
                "LastUpdatedTime": now,
            },
            "TxnDate": txn_date,
            "CurrencyRef": self._currency(payload),
        }
        rate = _exchange_rate(payload)
        if rate is not None:
            record["ExchangeRate"] = rate
        if "PrivateNote" in payload:
            record["PrivateNote"] = payload["PrivateNote"]
        if "DepartmentRef" in payload:
            record["DepartmentRef"] = self._named("Department", payload["DepartmentRef"])
        if entity == "Invoice":
            record.update(self._invoice_fields(payload, lines, sub_total, taxable, txn_date))
        else:
            record.update(self._bill_fields(payload, lines, sub_total, txn_date))
        if rate is not None:
            record["HomeTotalAmt"] = (record["TotalAmt"] * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        return record

    def _currency(self, payload: dict[str, Any]) -> dict[str, str]:
        code = _value(payload.get("CurrencyRef")) or "USD"
        return {"value": code, "name": CURRENCY_NAMES.get(code, code)}

    def _lines(
        self, entity: str, lines: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[Decimal], Decimal]:
        """Item/expense lines numbered and named as QuickBooks returns them; amounts; taxable amount."""
        out, amounts, taxable = [], [], Decimal(0)
        for line in lines:
            detail_type = line["DetailType"]
            if detail_type in ("SubTotalLineDetail", "DiscountLineDetail"):
                continue
            number = len(out) + 1
            detail = self._line_detail(entity, detail_type, dict(line.get(detail_type) or {}))
            mapped = {"Id": str(number), "LineNum": number}
            if "Description" in line:
                mapped["Description"] = line["Description"]
            mapped.update({"Amount": line["Amount"], "DetailType": detail_type, detail_type: detail})
            if entity == "Bill":
                mapped["LinkedTxn"] = []
            mapped["CustomExtensions"] = []
            out.append(mapped)
            amounts.append(Decimal(str(line["Amount"])))
            if _value(detail.get("TaxCodeRef")) == "TAX":
                taxable += Decimal(str(line["Amount"]))
        return out, amounts, taxable

    def _line_detail(self, entity: str, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        if "ItemRef" in detail:
            item = self._find("Item", _value(detail["ItemRef"])) or {}
            detail["ItemRef"] = self._named("Item", detail["ItemRef"])
            account_key = "IncomeAccountRef" if entity == "Invoice" else "ExpenseAccountRef"
            if entity == "Invoice" and item.get(account_key):
                detail["ItemAccountRef"] = item[account_key]
        if "AccountRef" in detail:
            detail["AccountRef"] = self._named("Account", detail["AccountRef"], "FullyQualifiedName")
        if "ClassRef" in detail:
            detail["ClassRef"] = self._named("Class", detail["ClassRef"], "FullyQualifiedName")
        if entity == "Bill":
            detail.setdefault("BillableStatus", "NotBillable")
        detail.setdefault("TaxCodeRef", {"value": "NON"})
        return detail

    def _invoice_fields(
        self,
        payload: dict[str, Any],
        lines: list[dict[str, Any]],
        sub_total: Decimal,
        taxable: Decimal,
        txn_date: str,
    ) -> dict[str, Any]:
        discount = self._discount(payload["Line"], sub_total)
        tax = (taxable * self.tax_rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        total = sub_total - discount + tax
        all_lines = [
            *lines,
            {"Amount": sub_total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ]
        if discount:
            all_lines.append(
                {
                    "Amount": discount,
                    "DetailType": "DiscountLineDetail",
                    "DiscountLineDetail": {
                        "PercentBased": False,
                        "DiscountAccountRef": {"value": "86", "name": "Discounts given"},
                    },
                }
            )
        customer = self._find("Customer", _value(payload["CustomerRef"])) or {}
        fields: dict[str, Any] = {
            "CustomField": self._custom_fields(payload.get("CustomField") or []),
            "DocNumber": payload.get("DocNumber") or self._auto_number(),
            "LinkedTxn": [],
            "Line": all_lines,
            "TxnTaxDetail": self._tax_detail(tax, taxable),
            "CustomerRef": {"value": customer["Id"], "name": customer.get("DisplayName", "")},
            "DueDate": payload.get("DueDate")
            or (date.fromisoformat(txn_date) + timedelta(days=30)).isoformat(),
            "TotalAmt": total,
            "ApplyTaxAfterDiscount": False,
            "PrintStatus": "NeedToPrint",
            "EmailStatus": "NotSet",
            "Balance": total,
        }
        if "ClassRef" in payload:
            fields["ClassRef"] = self._named("Class", payload["ClassRef"], "FullyQualifiedName")
        for key in ("BillAddr", "ShipAddr"):
            if key in customer:
                fields[key] = customer[key]
        if customer.get("PrimaryEmailAddr"):
            fields["BillEmail"] = customer["PrimaryEmailAddr"]
        return fields

    def _bill_fields(
        self, payload: dict[str, Any], lines: list[dict[str, Any]], sub_total: Decimal, txn_date: str
    ) -> dict[str, Any]:
        vendor = self._find("Vendor", _value(payload["VendorRef"])) or {}
        fields: dict[str, Any] = {
            "DueDate": payload.get("DueDate") or txn_date,
            "Balance": sub_total,
            "Line": lines,
            "VendorRef": {"value": vendor["Id"], "name": vendor.get("DisplayName", "")},
            "APAccountRef": {"value": "33", "name": "Accounts Payable (A/P)"},
            "TotalAmt": sub_total,
        }
        if payload.get("DocNumber"):
            fields["DocNumber"] = payload["DocNumber"]
        return fields

    def _discount(self, lines: list[dict[str, Any]], sub_total: Decimal) -> Decimal:
        total = Decimal(0)
        for line in lines:
            if line.get("DetailType") != "DiscountLineDetail":
                continue
            detail = line.get("DiscountLineDetail") or {}
            if detail.get("PercentBased"):
                percent = Decimal(str(detail.get("DiscountPercent", 0)))
                total += (sub_total * percent / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            else:
                total += Decimal(str(line["Amount"]))
        return total

    def _tax_detail(self, tax: Decimal, taxable: Decimal) -> dict[str, Any]:
        if not tax:
            return {"TotalTax": Decimal(0)}
        return {
            "TxnTaxCodeRef": {"value": "2"},
            "TotalTax": tax,
            "TaxLine": [
                {
                    "Amount": tax,
                    "DetailType": "TaxLineDetail",
                    "TaxLineDetail": {
                        "TaxRateRef": {"value": "3"},
                        "PercentBased": True,
                        "TaxPercent": self.tax_rate * 100,
                        "NetAmountTaxable": taxable,
                    },
                }
            ],
        }

    def _custom_fields(self, given: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "DefinitionId": str(field["DefinitionId"]),
                "Name": self.custom_fields[str(field["DefinitionId"])],
                "Type": "StringType",
                "StringValue": field.get("StringValue"),
            }
            for field in given
            if str(field.get("DefinitionId")) in self.custom_fields
        ]

    def _auto_number(self) -> str:
        number = str(self._next_doc_number)
        self._next_doc_number += 1
        return number
