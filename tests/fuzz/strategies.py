"""Hypothesis strategies: valid invoices, and the hostile and sloppy requests made from them.

:func:`valid_invoice` draws invoices the sandbox ledger accepts (ISO currencies, dates in both
accepted spellings, exact decimals as JSON numbers, line items whose totals add up, the
sandbox directory's contact, item, tracking category and period ids). Each entry of
:data:`CATEGORIES` mutates one aspect of a request made from such an invoice (its bytes,
nesting, numbers, strings, types, custom fields, top level, duplicate names, size, media
type, method, headers, Idempotency-Key, query, path) and draws a :class:`Probe`: one HTTP
request, with credentials that are valid for most probes and invalid for some, since every
request without valid credentials must get the one 401 whatever else it holds.

JSON is rendered here rather than with :func:`json.dumps`, so a probe can hold what no
encoder writes: literal number tokens (:class:`Raw`), repeated member names (:class:`Pairs`),
lone surrogates (escaped, or as the CESU-8 bytes of ``surrogatepass``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.fuzz.harness import Harness
from tests.fuzz.local_api import Header, Sent

INVOICES = "/accounting/invoices"
LISTS = (INVOICES, "/accounting/contacts", "/accounting/items", "/accounting/trackingcategories")
JSON = (("content-type", "application/json"),)


# --- JSON text that encoders would not write --------------------------------------------------


class Raw(str):
    """JSON text to insert as it is: ``Raw("1e400")``, ``Raw("[" * 5000)``."""


class Pairs(tuple):
    """A JSON object as (name, value) pairs, in order, names free to repeat; a name may be Raw."""


def render(value: Any, *, ascii: bool = True) -> str:
    """JSON text for ``value``: Decimals as number literals, Raw as is, Pairs with their repeats."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Pairs | dict):
        items = value if isinstance(value, Pairs) else value.items()
        return "{" + ",".join(f"{render(k, ascii=ascii)}:{render(v, ascii=ascii)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(render(item, ascii=ascii) for item in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii)


def encode(value: Any, *, ascii: bool = True) -> bytes:
    """UTF-8 bytes of :func:`render`; lone surrogates (``ascii=False``) become CESU-8 bytes."""
    return render(value, ascii=ascii).encode("utf-8", "surrogatepass")


# --- what a probe is --------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    category: str
    method: str
    target: str
    headers: tuple[Header, ...]
    body: bytes = b""
    expect_created: bool = False  # a valid invoice with valid credentials: must be 201 or 202
    content_length: bool = True  # False: send no Content-Length (the probe sets its own framing)
    unique_key: bool = False  # the runner adds a fresh Idempotency-Key

    @property
    def sent(self) -> Sent:
        return Sent(self.method, self.target, self.headers, self.body)


@dataclass(frozen=True)
class Context:
    """What probes are made of: the harness's credentials, ids and cursors, and valid invoices."""

    harness: Harness
    pool: tuple[dict[str, Any], ...] = ()  # drawn once with valid_invoice: what mutations start from

    @property
    def key(self) -> str:
        return self.harness.demo.api_key

    @property
    def token(self) -> str:
        return self.harness.demo.connection_token


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, chosen with the given integer weights."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)  # sampled_from draws evenly


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in ``n`` draws (``st.integers`` favours its bounds: not for odds)."""
    return st.sampled_from([True] + [False] * (n - 1))


def latin1_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Header-safe text: any ISO-8859-1 character but CR, LF and DEL (no header injection here)."""
    alphabet = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


# --- credentials ---------------------------------------------------------------------------------


def valid_credentials(ctx: Context) -> st.SearchStrategy[tuple[Header, ...]]:
    key, token = ctx.key, ctx.token
    return st.sampled_from(
        [
            (("x-api-key", key), ("x-connection-token", token)),
            (("X-API-KEY", key), ("X-Connection-Token", token)),
            (("x-connection-token", token), ("x-api-key", key)),
            ctx.harness.other.headers(),  # another project's own pair: valid, for its connection
        ]
    )


def invalid_credentials(ctx: Context) -> st.SearchStrategy[tuple[Header, ...]]:
    key, token, other, revoked = ctx.key, ctx.token, ctx.harness.other, ctx.harness.revoked
    fixed: list[tuple[Header, ...]] = [
        (),
        (("x-api-key", key),),
        (("x-connection-token", token),),
        (("x-api-key", ""), ("x-connection-token", "")),
        (("x-api-key", key), ("x-connection-token", "")),
        (("x-api-key", other.api_key), ("x-connection-token", token)),  # another project's key
        (("x-api-key", key), ("x-connection-token", other.connection_token)),  # another project's token
        (("x-api-key", revoked), ("x-connection-token", token)),
        (("x-api-key", token), ("x-connection-token", key)),  # swapped
        (("authorization", f"Bearer {key}"), ("x-connection-token", token)),
        (("x-api-key", key + "x"), ("x-connection-token", token)),
        (("x-api-key", key[:-1]), ("x-connection-token", token)),
        (("x-api-key", key.upper()), ("x-connection-token", token)),
        (("x-api-key", key), ("x-connection-token", token + "\x00")),
        (("x-api-key", key.encode() + b"\xff"), ("x-connection-token", token)),
        (("x-api-key", "lbk_" + "A" * 9000), ("x-connection-token", token)),
        (("x-api-key", key), ("x-api-key", "garbage"), ("x-connection-token", token)),  # "key,garbage"
        (("x-api-key", key), ("x-api-key", key), ("x-connection-token", token)),  # "key,key": joined, no key
        (("x-api_key", key), ("x-connection-token", token)),  # underscore: another header
        (("x-api-key", "null"), ("x-connection-token", "undefined")),
    ]
    garbage = st.tuples(
        st.tuples(st.just("x-api-key"), latin1_text(max_size=80)),
        st.tuples(st.just("x-connection-token"), latin1_text(max_size=80)),
    )
    return st.one_of(st.sampled_from(fixed), garbage)


def credentials(ctx: Context, invalid_percent: int = 15) -> st.SearchStrategy[tuple[Header, ...]]:
    return weighted(
        (100 - invalid_percent, valid_credentials(ctx)), (invalid_percent, invalid_credentials(ctx))
    )


# --- valid invoices ------------------------------------------------------------------------------

# Only what the README promises to accept: a valid invoice that is refused is a finding.
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "KWD", "BHD", "usd", "Gbp")
RECEIVABLE = ("ACCOUNTS_RECEIVABLE", "Sales", "ACCREC", "Invoice", "sales")
PAYABLE = ("ACCOUNTS_PAYABLE", "Bill", "ACCPAY", "Purchase", "bill")
STATUSES = ("DRAFT", "SUBMITTED", "OPEN", "PAID", "open", "Draft")
OFFSETS = ("Z", "+00:00", "+02:00", "-05:00", "+14:00", "-12:00")
PRINTABLE = st.characters(exclude_categories=("Cs", "Cc"))


def amount(max_value: int, places: int) -> st.SearchStrategy[Decimal]:
    """A positive exact decimal up to ``max_value`` with at most ``places`` decimal places."""
    return st.builds(
        lambda units, shown: Decimal(max(1, units // 10 ** (places - shown))).scaleb(-shown),
        st.integers(1, max_value * 10**places),
        st.integers(0, places),
    )


def _date_text(day: date, time_of_day: int | None, offset: str) -> str:
    if time_of_day is None:
        return day.isoformat()
    hours, minutes = divmod(time_of_day, 60)
    return f"{day.isoformat()}T{hours:02d}:{minutes:02d}:00{offset}"


@st.composite
def dates(draw: st.DrawFn) -> dict[str, str]:
    issue = draw(st.dates(date(2000, 1, 1), date(2099, 12, 31)))
    due = issue + timedelta(days=draw(st.integers(1, 365)))  # a day later: no offset can reorder them
    time_of_day = draw(st.none() | st.integers(0, 24 * 60 - 1))
    offset = draw(st.sampled_from(OFFSETS))
    chosen = {
        "issue_date": _date_text(issue, time_of_day, offset),
        "due_date": _date_text(due, time_of_day, offset),
    }
    return {name: text for name, text in chosen.items() if not draw(one_in(4))}


@st.composite
def line_item(draw: st.DrawFn, refs: Any, currency: str | None) -> dict[str, Any]:
    quantity = draw(amount(10_000, 4))
    unit_price = draw(amount(100_000, 4))
    line: dict[str, Any] = {"quantity": quantity, "unit_price": unit_price}
    if draw(st.booleans()):
        line["description"] = draw(st.text(PRINTABLE, min_size=1, max_size=40).map(str.strip).filter(bool))
    if draw(one_in(4)):
        line["total_amount"] = quantity * unit_price
    if draw(one_in(4)):
        line["item_id"] = draw(st.sampled_from(refs.items))
    if draw(one_in(5)):
        line["tracking_categories"] = draw(st.lists(st.sampled_from(refs.tracking), max_size=2, unique=True))
    if currency and draw(one_in(5)):
        line["currency"] = currency
    if draw(one_in(6)):  # some clients send money as strings ("12.50")
        line["unit_price"] = str(unit_price)
    return line


@st.composite
def valid_invoice(draw: st.DrawFn, refs: Any) -> dict[str, Any]:
    """An invoice the sandbox ledger creates (no number: the sandbox refuses a reused one)."""
    currency = draw(st.sampled_from(CURRENCIES))
    payable = draw(one_in(5))
    invoice: dict[str, Any] = {"currency": currency, **draw(dates())}
    lines = draw(st.lists(line_item(refs, currency), min_size=1, max_size=4))
    invoice["line_items"] = lines
    if payable or draw(st.booleans()):
        invoice["type"] = draw(st.sampled_from(PAYABLE if payable else RECEIVABLE))
    if draw(st.booleans()):
        invoice["contact_id"] = draw(st.sampled_from(refs.vendors if payable else refs.customers))
    if draw(one_in(4)):
        invoice["status"] = draw(st.sampled_from(STATUSES))
    if draw(one_in(3)):
        invoice["memo"] = draw(st.text(PRINTABLE, max_size=80))
    if draw(one_in(6)):
        invoice["accounting_period_id"] = refs.period
    if draw(one_in(6)):
        invoice["tracking_categories"] = draw(
            st.lists(st.sampled_from(refs.tracking), max_size=2, unique=True)
        )
    if draw(one_in(6)):
        invoice["exchange_rate"] = draw(amount(1000, 6))
    if draw(one_in(5)):
        invoice["field_mappings"] = draw(
            st.dictionaries(
                st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20),
                st.one_of(
                    st.none(), st.booleans(), st.text(PRINTABLE, max_size=30), st.integers(-(10**9), 10**9)
                ),
                max_size=4,
            )
        )
    if draw(one_in(3)):  # totals the caller states must add up
        sub_total = sum(
            (Decimal(str(line["quantity"])) * Decimal(str(line["unit_price"])) for line in lines), Decimal(0)
        )
        discount = draw(st.sampled_from([Decimal(0), sub_total / 4]))
        tax = draw(st.sampled_from([Decimal(0), Decimal("1.5"), sub_total / 5]))
        invoice.update(sub_total=sub_total, total_discount=discount, total_tax_amount=tax)
        invoice["total_amount"] = sub_total - discount + tax
    return invoice


# --- where a mutation lands ----------------------------------------------------------------------

TOP_FIELDS = (
    "type", "number", "issue_date", "due_date", "paid_on_date", "memo", "currency", "exchange_rate",
    "total_discount", "sub_total", "status", "total_tax_amount", "total_amount", "balance", "contact_id",
    "accounting_period_id", "tracking_categories", "line_items", "field_mappings",
)  # fmt: skip
LINE_FIELDS = (
    "description", "unit_price", "quantity", "total_amount", "currency", "exchange_rate", "item_id",
    "tracking_categories",
)  # fmt: skip
NUMERIC_TOP = ("exchange_rate", "total_discount", "sub_total", "total_tax_amount", "total_amount", "balance")
NUMERIC_LINE = ("unit_price", "quantity", "total_amount", "exchange_rate")
TEXT_TOP = (
    "type", "number", "issue_date", "due_date", "paid_on_date", "memo", "currency", "status", "contact_id",
)  # fmt: skip
TEXT_LINE = ("description", "currency", "item_id")
Path = tuple[str | int, ...]


def paths(top: tuple[str, ...], line: tuple[str, ...]) -> st.SearchStrategy[Path]:
    return st.one_of(
        st.sampled_from(top).map(lambda name: (name,)),
        st.sampled_from(line).map(lambda name: ("line_items", 0, name)),
    )


def put(invoice: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """A copy of the invoice with ``value`` at ``path`` (line_items.0 exists in every valid invoice)."""
    copy = {**invoice, "line_items": [dict(line) for line in invoice["line_items"]]}
    target: Any = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def body_probes(
    ctx: Context, category: str, bodies: st.SearchStrategy[bytes], invalid_percent: int = 15
) -> st.SearchStrategy[Probe]:
    """POST /accounting/invoices with each drawn body, JSON Content-Type, mostly valid credentials."""
    return st.builds(
        lambda headers, body: Probe(category, "POST", INVOICES, headers + JSON, body),
        credentials(ctx, invalid_percent),
        bodies,
    )


def invoices(ctx: Context) -> st.SearchStrategy[dict[str, Any]]:
    """The valid invoice a mutation starts from: one of the context's pool (one draw, where a
    fresh :func:`valid_invoice` is a few hundred) or, without a pool, a fresh one."""
    return st.sampled_from(ctx.pool) if ctx.pool else valid_invoice(ctx.harness.refs)


def invoice_pool(refs: Any, seed_value: int, size: int = 64) -> tuple[dict[str, Any], ...]:
    """``size`` valid invoices, the same ones for the same seed (Hypothesis, seeded)."""
    pool: list[dict[str, Any]] = []

    @seed(seed_value)
    @settings(
        max_examples=size,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(valid_invoice(refs))
    def collect(invoice: dict[str, Any]) -> None:
        pool.append(invoice)

    collect()
    return tuple(pool)


CHEAP_BODIES = (
    b'{"currency": 1}',
    b'{"line_items": "none"}',
    b'{"memo": "x", "unknown": true}',
    b'{"due_date": "soon"}',
)


def some_invoices(ctx: Context) -> st.SearchStrategy[bytes]:
    """For probes about the envelope (method, headers, query, path): a valid invoice one time in
    three, else a body refused at once. Creating is the slow path (and every invoice created
    makes list pages longer); it has categories of its own."""
    return weighted((1, invoices(ctx).map(encode)), (2, st.sampled_from(CHEAP_BODIES)))


# --- the categories ---------------------------------------------------------------------------------


def valid(ctx: Context) -> st.SearchStrategy[Probe]:
    queries = st.sampled_from(["", "", "", "?remote_data=true", "?remote_data=0", "?remote_data=false"])
    content_types = st.sampled_from([JSON, JSON, (("Content-Type", "application/json; charset=utf-8"),), ()])
    # RFC 7240 preferences: respond-async answers 202 without the ledger; others are ignored.
    prefers = st.sampled_from([(), (), (("Prefer", "respond-async"),), (("Prefer", "return=minimal"),)])

    def probe(
        invoice: dict[str, Any], query: str, content_type: tuple[Header, ...], prefer: tuple[Header, ...],
        keyed: bool,
    ) -> Probe:  # fmt: skip
        headers = ctx.harness.demo.headers() + content_type + prefer
        return Probe(
            "valid", "POST", INVOICES + query, headers, encode(invoice), expect_created=True, unique_key=keyed
        )

    return st.builds(probe, valid_invoice(ctx.harness.refs), queries, content_types, prefers, st.booleans())


INVALID_UTF8 = (
    b"\xff", b"\xfe\xff", b"\x80", b"\xc0\xaf", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\x00",
)  # fmt: skip


def raw_bytes(ctx: Context) -> st.SearchStrategy[Probe]:
    valid_json = invoices(ctx).map(encode)

    @st.composite
    def spliced(draw: st.DrawFn) -> bytes:
        body = draw(valid_json)
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from(INVALID_UTF8)) + body[at:]

    fixed = [
        b"\xff", b"\x00", b"\x00" * 64, b"\xef\xbb\xbf{}", b'{"memo": "\xff"}', b'{"\xff": 1}',
        b'{"memo": "a\x00b"}', b'{"memo": "\xed\xa0\x80"}', b'{"memo": "\xc0\xaf"}', b'{"currency": "USD"',
        '{"memo": "caf\u00e9"}'.encode("latin-1"), b"\x1f\x8b\x08\x00\x00\x00\x00\x00", b"\r\n\r\n",
    ]  # fmt: skip
    bodies = st.one_of(
        st.sampled_from(fixed),
        spliced(),
        valid_json.map(lambda body: body.decode().encode("utf-16")),
        valid_json.map(lambda body: body.decode().encode("utf-32-be")),
        valid_json.map(lambda body: b"\xef\xbb\xbf" + body),
        valid_json.map(lambda body: body[: len(body) // 2]),
        st.binary(min_size=1, max_size=300),
    )
    return body_probes(ctx, "raw_bytes", bodies)


def deep_nesting(ctx: Context) -> st.SearchStrategy[Probe]:
    depth = st.one_of(st.sampled_from([33, 999, 1000, 1001, 5000, 50_000, 200_000]), st.integers(10, 3000))

    def nest(kind: str, n: int) -> Any:
        if kind == "array":
            return Raw("[" * n + "]" * n)
        if kind == "object":
            return Raw('{"a":' * n + "1" + "}" * n)
        if kind == "mixed":
            return Raw('[{"a":' * (n // 2) + "[]" + "}]" * (n // 2))
        return Raw("[" * n)  # never closed

    kinds = st.sampled_from(["array", "object", "mixed", "open"])
    where = st.sampled_from(
        ["body", "line_items", "field_mappings", "memo", "line_items.0.quantity", "unknown"]
    )

    def body(invoice: dict[str, Any], kind: str, n: int, place: str) -> bytes:
        nested = nest(kind, n)
        if place == "body":
            return nested.encode()
        if place == "field_mappings":
            return encode({**invoice, "field_mappings": {"deep": nested}})
        if place == "unknown":
            return encode({**invoice, "extra": nested})
        if place == "line_items.0.quantity":
            return encode(put(invoice, ("line_items", 0, "quantity"), nested))
        return encode({**invoice, place: nested})

    return body_probes(ctx, "deep_nesting", st.builds(body, invoices(ctx), kinds, depth, where))


EXTREME_NUMBERS = (
    "1e99999999999999999999", "-1e99999999999999999999", "1e400", "-1e400", "1E+400", "1e-131", "1e-400",
    "1e-99999999999999999999", "0e99999999999999999999", "1e126", "1e125", "9.999e125", "1e-130",
    "1" + "0" * 39, "9" * 40, "-" + "9" * 40, "9" * 5000, "-" + "9" * 5000, "1" + "0" * 4300, "9" * 4301,
    "0." + "0" * 5000 + "1", "1." + "5" * 5000, "123456789012345678901234567890.123", "0.00000000001",
    "1" + "0" * 28, "1" + "0" * 27 + ".5", "-0", "-0.0", "0.0", "1.0e0", "5e-324", "1.7976931348623157e308",
    "2e308", "-2e308", "100000000000000000000000000000000000000000000000000e-50", "1E1", "1e+0",
    "1e-999999", "1e-1000000", "1e-1000030", "0e-1000030", "-509.0e-4250424", "1e999999", "1e1000000",
    "1e-999999999", "1e999999999",
)  # fmt: skip


def number_literals() -> st.SearchStrategy[str]:
    generated = st.builds(
        lambda sign, digits, fraction, exponent: f"{sign}{digits}{fraction}{exponent}",
        st.sampled_from(["", "-"]),
        st.integers(0, 10**60).map(str),
        st.one_of(st.just(""), st.integers(0, 10**40).map(lambda f: f".{f}")),
        st.one_of(st.just(""), st.integers(-(10**20), 10**20).map(lambda e: f"e{e}")),
    )
    return st.one_of(st.sampled_from(EXTREME_NUMBERS), generated)


def numbers(ctx: Context) -> st.SearchStrategy[Probe]:
    literal = number_literals()
    as_value = weighted((2, literal.map(Raw)), (1, literal))  # a JSON number, or its digits as a string
    where = st.one_of(
        paths(NUMERIC_TOP, NUMERIC_LINE),
        paths(NUMERIC_TOP, NUMERIC_LINE),
        st.just(("field_mappings",)),
        paths(TEXT_TOP, TEXT_LINE),
    )

    def body(invoice: dict[str, Any], path: Path, value: Any, top: str) -> bytes:
        if path == ("field_mappings",):
            return encode({**invoice, "field_mappings": {"n": value}})
        if top:
            return top.encode()
        return encode(put(invoice, path, value))

    top_level = weighted((4, st.just("")), (1, literal))  # "": in the invoice, else the whole body
    return body_probes(ctx, "numbers", st.builds(body, invoices(ctx), where, as_value, top_level))


NON_FINITE = ("NaN", "Infinity", "-Infinity", "-NaN", "+Infinity", "nan", "inf")
NON_FINITE_TEXT = (
    "NaN", "nan", "sNaN", "-sNaN", "sNaN123", "NaN123", "Infinity", "-Infinity", "inf", "-inf", "+inf",
    "Inf", "infinity", "1e400", "1e99999999999999999999", "1e-1000030", " 12.50 ", "1_000", "0x10",
    "\u0661\u0662\u0663",
    "\uff11\uff12", "12,50", "1e", ".", "-", "",
)  # fmt: skip


def non_finite(ctx: Context) -> st.SearchStrategy[Probe]:
    values = st.one_of(st.sampled_from(NON_FINITE).map(Raw), st.sampled_from(NON_FINITE_TEXT))
    where = st.one_of(
        paths(NUMERIC_TOP, NUMERIC_LINE), paths(NUMERIC_TOP, NUMERIC_LINE), paths(TEXT_TOP, TEXT_LINE)
    )

    def body(invoice: dict[str, Any], path: Path, value: Any, in_mappings: bool) -> bytes:
        if in_mappings:
            return encode({**invoice, "field_mappings": {"x": value}})
        return encode(put(invoice, path, value))

    bodies = st.one_of(
        st.builds(body, invoices(ctx), where, values, one_in(6)),
        st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'{"total_amount": NaN}']),
    )
    return body_probes(ctx, "non_finite", bodies)


LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff", "\ud83d", "\ude00\ud83d")


def surrogate_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda before, lone, after: before + lone + after,
        st.text(PRINTABLE, max_size=4),
        st.sampled_from(LONE_SURROGATES),
        st.text(PRINTABLE, max_size=4),
    )


def surrogates(ctx: Context) -> st.SearchStrategy[Probe]:
    places = st.sampled_from(
        ["value", "value", "key", "line_key", "mapping_key", "mapping_value", "tracking", "top_key_only"]
    )
    where = paths(TEXT_TOP, TEXT_LINE)

    def body(invoice: dict[str, Any], place: str, path: Path, text: str, escaped: bool) -> bytes:
        if place == "value":
            changed: Any = put(invoice, path, text)
        elif place == "key":
            changed = {**invoice, text: "x"}
        elif place == "line_key":
            changed = put(invoice, ("line_items", 0, text), 1)
        elif place == "mapping_key":
            changed = {**invoice, "field_mappings": {text: "v"}}
        elif place == "mapping_value":
            changed = {**invoice, "field_mappings": {"k": text}}
        elif place == "tracking":
            changed = {**invoice, "tracking_categories": [text]}
        else:
            changed = {text: 1}
        return encode(changed, ascii=escaped)

    escaped = weighted((9, st.just(True)), (1, st.just(False)))  # \ud800 escapes; or CESU-8 bytes
    return body_probes(
        ctx, "surrogates", st.builds(body, invoices(ctx), places, where, surrogate_text(), escaped)
    )


WRONG_TYPES: tuple[Any, ...] = (
    [], [1, "a"], {}, {"a": 1}, 0, -1, Decimal("1.5"), True, False, "", "x", "9" * 50, [[]], {"": None},
    "null", "[]", "{}", "A" * 20_000, [None], {"currency": "USD"},
)  # fmt: skip


def wrong_types(ctx: Context) -> st.SearchStrategy[Probe]:
    where = st.one_of(
        paths(TOP_FIELDS, LINE_FIELDS),
        st.just(("line_items", 0)),
        st.just(("tracking_categories",)),
    )

    def body(invoice: dict[str, Any], path: Path, value: Any) -> bytes:
        if path == ("tracking_categories",):
            return encode({**invoice, "tracking_categories": [value]})
        return encode(put(invoice, path, value))

    return body_probes(
        ctx, "wrong_types", st.builds(body, invoices(ctx), where, st.sampled_from(WRONG_TYPES))
    )


def field_mappings(ctx: Context) -> st.SearchStrategy[Probe]:
    odd = [
        {"": 1}, {"n": Raw("1e400")}, {"n": Raw("-1e400")}, {"n": Raw("1e-131")}, {"n": Raw("1" + "0" * 39)},
        {"n": Raw("9" * 5000)}, {"n": Raw("NaN")}, {"n": "NaN"}, {"n": {"nested": {"deeper": [1, 2]}}},
        {"n": [1, 2, 3]}, {"n": {}}, {"n": []}, {" padded ": 1}, {"tab\there": 1}, {"nul\x00": 1},
        {"line\nbreak": 1}, {"k" * 65: 1}, {"k" * 10_000: 1}, {"v": "x" * 1001}, {"v": "x" * 100_000},
        {f"k{i}": i for i in range(101)}, {f"k{i}": "x" * 200 for i in range(90)}, {"\ud800": 1},
        {"v": "\udfff"},
        {"emoji\U0001f600": "ok"}, {"n": Raw("1e126")}, {"n": Raw("-0")}, {"n": True}, {"n": None},
        Pairs([("a", 1), ("a", 2)]), [], "mappings", 1, {"__proto__": {"polluted": True}}, {"constructor": 1},
        {"n": Raw("0.1")}, {"n": Decimal("123456789012345678901234567890123456789")}, {" ": 1}, {"\n": 1},
        {"n": Raw("1e-1000030")},
    ]  # fmt: skip
    generated = st.dictionaries(
        st.one_of(st.text(max_size=70), surrogate_text()),
        st.one_of(
            st.none(),
            st.booleans(),
            st.text(max_size=50),
            number_literals().map(Raw),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
        ),
        max_size=6,
    )
    mappings = st.one_of(st.sampled_from(odd), generated)
    at_line = one_in(6)  # unknown there: must be 422, whatever it holds

    def body(invoice: dict[str, Any], value: Any, line: bool) -> bytes:
        if line:
            return encode(put(invoice, ("line_items", 0, "field_mappings"), value))
        return encode({**invoice, "field_mappings": value})

    return body_probes(ctx, "field_mappings", st.builds(body, invoices(ctx), mappings, at_line))


TOP_LEVELS = (
    b"[]", b"[{}]", b"1", b"-1", b"1e400", b'"invoice"', b"null", b"true", b"false", b"", b" ", b"\n\t ",
    b"{}", b"{} {}", b"{}garbage", b"[1,2", b'"\\ud800"', b"{", b"}", b'{"a"}', b'{"a":}', b"{,}", b"[,]",
    b"'single'", b"{'currency': 'USD'}", b'{"currency": "USD",}', b"/* comment */ {}", b"{} // comment",
    b"\x00{}", b"{}\x00", b'{"line_items": [,]}', b"[" * 2 + b"]" * 2, b'"' + b"x" * 10_000 + b'"',
)  # fmt: skip


def top_level(ctx: Context) -> st.SearchStrategy[Probe]:
    wrapped = invoices(ctx).map(lambda invoice: encode([invoice]))
    as_string = invoices(ctx).map(lambda invoice: json.dumps(render(invoice)).encode())
    bodies = st.one_of(st.sampled_from(TOP_LEVELS), wrapped, as_string)
    return body_probes(ctx, "top_level", bodies)


def duplicate_keys(ctx: Context) -> st.SearchStrategy[Probe]:
    replacements = st.sampled_from(["same", "valid", "null", "number", "object", "escaped_name", "case"])

    def body(invoice: dict[str, Any], index: int, how: str, in_line: bool) -> bytes:
        container = invoice["line_items"][0] if in_line else invoice
        items = list(container.items())
        name, value = items[index % len(items)]
        other = {
            "same": value,
            "valid": "EUR" if name == "currency" else Decimal("12.5"),
            "null": None,
            "number": Decimal("1e3"),
            "object": {"a": 1},
        }.get(how, value)
        if how == "escaped_name":  # the same name spelled with an escape: equal once decoded
            pairs = Pairs(
                [*items, (Raw(json.dumps(name).replace(name[0], f"\\u{ord(name[0]):04x}", 1)), value)]
            )
        elif how == "case":
            pairs = Pairs([*items, (name.upper(), value)])
        else:
            pairs = Pairs([*items, (name, other)])
        if in_line:
            return encode({**invoice, "line_items": [pairs, *invoice["line_items"][1:]]})
        return encode(pairs)

    bodies = st.builds(body, invoices(ctx), st.integers(0, 20), replacements, st.booleans())
    return body_probes(ctx, "duplicate_keys", bodies)


SIZES = (999_999, 1_000_000, 1_000_001, 1_048_575, 1_048_576, 1_048_577, 1_500_000)


def big_bodies(ctx: Context) -> st.SearchStrategy[Probe]:
    def padded(invoice: dict[str, Any], size: int) -> bytes:
        text = encode(invoice)
        return text[:-1] + b" " * max(0, size - len(text)) + b"}"  # valid JSON of exactly `size` bytes

    def multibyte(invoice: dict[str, Any], size: int) -> bytes:  # fewer characters than bytes
        text = encode(invoice, ascii=False)
        return encode({**invoice, "memo": "\u20ac" * max(0, (size - len(text)) // 3)}, ascii=False)

    def memo(invoice: dict[str, Any], size: int) -> bytes:
        return encode({**invoice, "memo": "m" * size})

    def lines(invoice: dict[str, Any], count: int) -> bytes:
        line = {"description": "Line", "quantity": 1, "unit_price": Decimal("0.01")}
        return encode({**invoice, "line_items": [line] * count})

    bodies = st.one_of(
        st.builds(padded, invoices(ctx), st.sampled_from(SIZES)),
        st.builds(multibyte, invoices(ctx), st.sampled_from(SIZES)),
        st.builds(memo, invoices(ctx), st.sampled_from([10_000, 10_001, 500_000, 1_000_001])),
        st.builds(lines, invoices(ctx), st.sampled_from([1000, 1001, 5000])),
        st.just(b" " * 1_000_001),
        st.just(b"{" + b" " * (10 * 2**20) + b"}"),  # over API Gateway's 10 MB: the gateway's own 413
    )
    return body_probes(ctx, "big_bodies", bodies)


MEDIA_TYPES: tuple[str | bytes | None, ...] = (
    "application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8",
    "APPLICATION/JSON",
    "Application/Json ; Charset=utf-8", "application/jsonp", "application/json-seq", "application/json\x00",
    "application/json\x00text/html", "application/json; charset=latin-1", "application/json; charset=utf-16",
    "application/json; boundary=", "application/json;", "application/json ;", "application/json, text/plain",
    "multipart/form-data", "multipart/form-data; boundary=----x", "text/plain", "text/json", "text/html",
    "application/x-www-form-urlencoded", "application/merge-patch+json", "application/problem+json",
    "application/vnd.api+json", "application/+json", "application/xml", "*/*", "application/*", "json", ";;;",
    "", " ", "application", "application/", "/json", b"application/json\xff", b"\xff\xfe", None,
)  # fmt: skip


def media_types(ctx: Context) -> st.SearchStrategy[Probe]:
    bodies = weighted((2, some_invoices(ctx)), (1, st.sampled_from([b"currency=USD", b"[]", b"\xff", b""])))

    def probe(
        headers: tuple[Header, ...], content_type: str | bytes | None, repeat: bool, body: bytes
    ) -> Probe:
        types: tuple[Header, ...] = () if content_type is None else (("Content-Type", content_type),)
        if repeat and content_type is not None:
            types += (("Content-Type", "text/plain"),)
        return Probe("media_types", "POST", INVOICES, headers + types, body)

    repeat = one_in(10)
    return st.builds(probe, credentials(ctx), st.sampled_from(MEDIA_TYPES), repeat, bodies)


METHODS = (
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT", "get", "Post", "FOO",
    "PROPFIND", "M-SEARCH", "BREW", "A" * 300,
)  # fmt: skip


def route_paths(ctx: Context) -> st.SearchStrategy[str]:
    ids = st.sampled_from([*ctx.harness.invoice_ids, "not-an-id", "00000000-0000-0000-0000-000000000000"])
    return st.one_of(
        st.sampled_from([*LISTS, "/openapi.json", "/swagger", "/", "/accounting", "/nope"]),
        st.sampled_from(LISTS).map(lambda path: f"{path}?limit=3"),
        ids.map(lambda invoice_id: f"{INVOICES}/{invoice_id}"),
    )


def methods(ctx: Context) -> st.SearchStrategy[Probe]:
    bodies = st.one_of(st.just(b""), some_invoices(ctx), st.just(b"\xff"))

    def probe(method: str, path: str, headers: tuple[Header, ...], body: bytes) -> Probe:
        return Probe("methods", method, path, headers + JSON, body)

    return st.builds(probe, st.sampled_from(METHODS), route_paths(ctx), credentials(ctx), bodies)


EXTRA_HEADERS: tuple[tuple[Header, ...], ...] = (
    (("X-Unknown", "1"),),
    (("X-Huge", "h" * 9000),),
    tuple((f"X-Many-{i}", str(i)) for i in range(60)),
    (("X-Garbage", b"\xff\xfe\x00\x01"),),
    (("Accept", "text/html"),),
    (("Accept", "application/xml"),),
    (("Accept", "\x01\x02"),),
    (("Accept-Charset", "utf-16"),),
    (("Content-Encoding", "gzip"),),
    (("Content-Encoding", "br, deflate"),),
    (("Expect", "100-continue"),),
    (("X-Forwarded-For", "1.2.3.4, garbage, ::1"),),
    (("X-Forwarded-Proto", "gopher"),),
    (("Host", ""),),
    (("Host", "evil.example\x00"),),
    (("Cookie", "session=" + "c" * 4000),),
    (("Authorization", "Basic Og=="),),
    (("X-HTTP-Method-Override", "DELETE"),),
    (("Origin", "null"),),
    (("Range", "bytes=0-1"),),
    (("If-None-Match", "*"),),
    (("User-Agent", "\u00e9" * 200),),
    (("X-Amzn-Trace-Id", "Root=garbage"),),
    (("X-Request-Id", "../../etc/passwd"),),
    (("Content-Length", "abc"),),
    (("Content-Length", "-1"),),
    (("Content-Length", "1e3"),),
    (("Transfer-Encoding", "chunked"),),
)


def headers(ctx: Context) -> st.SearchStrategy[Probe]:
    def probe(extra: tuple[Header, ...], creds: tuple[Header, ...], post_it: bool, body: bytes) -> Probe:
        framing = any(name.lower() in ("content-length", "transfer-encoding") for name, _ in extra)
        if post_it:
            return Probe("headers", "POST", INVOICES, creds + JSON + extra, body, content_length=not framing)
        target = f"{INVOICES}/{ctx.harness.invoice_ids[0]}"
        return Probe("headers", "GET", target, creds + extra, content_length=not framing)

    garbage = st.lists(st.tuples(st.sampled_from(["X-Fuzz", "Accept", "Referer"]), latin1_text()), max_size=3)
    extra = st.one_of(st.sampled_from(EXTRA_HEADERS), garbage.map(tuple))
    return st.builds(probe, extra, credentials(ctx, invalid_percent=50), st.booleans(), some_invoices(ctx))


IDEMPOTENCY_KEYS: tuple[str | bytes, ...] = (
    "", " ", "a", "k" * 255, "k" * 256, "k" * 10_000, "\t", "a b", "\x01", "key\x00", b"\xff\xfe",
    "caf\u00e9", "null", "../../", "*", "fuzz-1", "fuzz-2", "fuzz-3",
)  # fmt: skip


def idempotency(ctx: Context) -> st.SearchStrategy[Probe]:
    pool = st.sampled_from(
        [
            {"currency": "USD", "line_items": [{"quantity": 1, "unit_price": Decimal("1.5")}]},
            {"currency": "EUR", "line_items": [{"quantity": 2, "unit_price": Decimal("0.1")}]},
            {"currency": "usd"},  # refused by the sandbox: stored as failed
        ]
    )
    bodies = st.one_of(
        pool.map(encode), pool.map(encode), invoices(ctx).map(encode), st.just(b'{"currency": 1}')
    )

    def probe(keys: list[str | bytes], creds: tuple[Header, ...], body: bytes) -> Probe:
        return Probe(
            "idempotency", "POST", INVOICES, creds + JSON + tuple(("Idempotency-Key", k) for k in keys), body
        )

    keys = st.lists(st.sampled_from(IDEMPOTENCY_KEYS) | latin1_text(max_size=20), min_size=1, max_size=2)
    return st.builds(probe, keys, credentials(ctx), bodies)


QUERY_VALUES = {
    "remote_data": [
        "yes", "true", "false", "1", "0", "TRUE", "", "tru", "%00", "%ff", "1e400", "null", "%20true",
    ],
    "limit": [
        "-1", "0", "1", "100", "101", "abc", "1e9", "1.5", "", "99999999999999999999999999", "0x10", "%205",
        "5%20", "%D9%A5", "NaN", "Infinity", "+5", "05", "1_0", "9" * 5000,
    ],
    "cursor": ["", "garbage", "%00", "%ff%fe", "../", "=", "a" * 10_000, "bnVsbA==", "YWZ0ZXI6", "%ED%A0%80"],
}  # fmt: skip


def query(ctx: Context) -> st.SearchStrategy[Probe]:
    names = st.sampled_from([*QUERY_VALUES, "unknown", "LIMIT", "limit[]", "remote_data[]"])
    cursors = st.sampled_from([*QUERY_VALUES["cursor"], *ctx.harness.cursors])

    @st.composite
    def pair(draw: st.DrawFn) -> str:
        name = draw(names)
        values = QUERY_VALUES.get(name.strip("[]").lower(), ["1"])
        value = draw(
            cursors if name == "cursor" else st.sampled_from(values) | latin1_text(max_size=10).map(quote)
        )
        return f"{name}={value}"

    raw = st.sampled_from(["?", "?&&==&", "?%", "?limit", "?;", "?limit=5;limit=6", "?#frag", "??limit=1"])
    queries = st.one_of(
        st.lists(pair(), min_size=1, max_size=3).map(lambda pairs: "?" + "&".join(pairs)), raw
    )
    gets = st.sampled_from([*LISTS, *LISTS, f"{INVOICES}/{ctx.harness.invoice_ids[0]}"])
    get_probes = st.builds(
        lambda route, q, creds: Probe("query", "GET", route + q, creds), gets, queries, credentials(ctx)
    )
    post_probes = st.builds(
        lambda q, creds, body: Probe("query", "POST", INVOICES + q, creds + JSON, body),
        queries,
        credentials(ctx),
        some_invoices(ctx),
    )
    open_routes = st.sampled_from(["/openapi.json", "/swagger"])  # no credentials needed
    unauthenticated = st.builds(lambda route, q: Probe("query", "GET", route + q, ()), open_routes, queries)
    return weighted((16, get_probes), (4, post_probes), (1, unauthenticated))


def path(ctx: Context) -> st.SearchStrategy[Probe]:
    harness = ctx.harness
    ids = [
        harness.invoice_ids[0], harness.invoice_ids[0].upper(), "{" + harness.invoice_ids[0] + "}",
        harness.foreign_invoice_id, "00000000-0000-0000-0000-000000000000", "abc", "%00", "%ff", "%2F", "..",
        "%2e%2e", "a" * 5000, "%C3%A9", "%ED%A0%80", "%20", "null", "undefined", "1", "-1", "*",
        "'%20OR%201=1",
        harness.invoice_ids[0] + "%00", harness.invoice_ids[0] + ";x", harness.invoice_ids[0] + "%0A",
    ]  # fmt: skip
    others = [
        f"{INVOICES}/", f"/{INVOICES}", "//accounting/invoices", f"{INVOICES}/x/y", "/ACCOUNTING/INVOICES",
        "/accounting/invoices%2Fx", "/openapi.json/", "/swagger/", "/", "*",
        "http://evil.example/accounting/invoices", f"{INVOICES}#fragment", f"{INVOICES};jsessionid=1",
        "/accounting/./invoices", "/accounting/../accounting/invoices",
        "/%61ccounting/invoices", f"{INVOICES}/%", "/accounting/invoices/" + "%" * 3, "/" + "a" * 8000,
    ]  # fmt: skip
    targets = st.one_of(st.sampled_from(ids).map(lambda i: f"{INVOICES}/{i}"), st.sampled_from(others))
    method = st.sampled_from(["GET", "GET", "POST"])

    def probe(target: str, creds: tuple[Header, ...], verb: str, body: bytes) -> Probe:
        body = body if verb == "POST" else b""
        return Probe("path", verb, target, creds + (JSON if body else ()), body)

    return st.builds(probe, targets, credentials(ctx), method, some_invoices(ctx))


# name -> (strategy factory, share of the suite's request budget)
CATEGORIES: dict[str, tuple[Callable[[Context], st.SearchStrategy[Probe]], float]] = {
    "valid": (valid, 0.015),
    "raw_bytes": (raw_bytes, 0.055),
    "deep_nesting": (deep_nesting, 0.05),
    "numbers": (numbers, 0.06),
    "non_finite": (non_finite, 0.04),
    "surrogates": (surrogates, 0.055),
    "wrong_types": (wrong_types, 0.06),
    "field_mappings": (field_mappings, 0.05),
    "top_level": (top_level, 0.045),
    "duplicate_keys": (duplicate_keys, 0.04),
    "big_bodies": (big_bodies, 0.02),
    "media_types": (media_types, 0.05),
    "methods": (methods, 0.05),
    "headers": (headers, 0.05),
    "idempotency": (idempotency, 0.04),
    "query": (query, 0.07),
    "path": (path, 0.05),
}


def with_key(probe: Probe, key: str) -> Probe:
    return replace(probe, headers=(*probe.headers, ("Idempotency-Key", key)))
