"""The connect pages an end user sees: plain server-rendered HTML, no script, no external asset.

Every page is one self-contained document: inline CSS allowed by its hash in a strict
Content-Security-Policy (nothing else may load or run), ``X-Frame-Options: DENY`` and
``frame-ancestors 'none'`` (no clickjacking of a consent), ``Referrer-Policy: no-referrer`` (the
page token in the URL never leaks to a provider), ``Cache-Control: no-store``. Forms say
``form-action`` 'self' and the schemes a consent screen lives on, because the ledger form
posts here and is redirected on to the provider. Accessibility: one ``<h1>``, a ``<label>`` for
every control, the ledgers as a fieldset of real buttons (keyboard reachable in order), a
visible focus ring, and text contrast above WCAG AA (#1f2933 on white, white on #1a4d8f).
All text from outside (names, messages) is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from html import escape

from ledgerbridge.connect import Ledger, Page, TenantChoice
from ledgerbridge.providers.base import ConnectChoice

_STYLE = (
    "body{font-family:system-ui,sans-serif;color:#1f2933;background:#fff;max-width:34rem;"
    "margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "h1{font-size:1.5rem}form{margin:0 0 1rem;padding:1rem;border:1px solid #9aa5b1;border-radius:6px}"
    "button,.button{background:#1a4d8f;color:#fff;border:0;border-radius:4px;padding:.6rem 1rem;"
    "font-size:1rem;cursor:pointer;text-decoration:none;display:inline-block}"
    ".secondary{background:#fff;color:#1a4d8f;border:2px solid #1a4d8f}"
    "button:focus,a:focus,select:focus{outline:3px solid #f0b429;outline-offset:2px}"
    "label{display:block;margin:.5rem 0 .25rem}"
    "select{display:block;font-size:1rem;padding:.3rem;margin-bottom:.75rem}"
    "fieldset{border:0;padding:0;margin:0}legend{font-weight:600;margin-bottom:.5rem}"
    "p.note{color:#3e4c59;font-size:.9rem}"
)


@cache
def _style_hash() -> str:
    return base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()


def security_headers(form_schemes: str = "https:") -> dict[str, str]:
    """The headers every connect page carries (see the module docstring)."""
    policy = (
        f"default-src 'none'; style-src 'sha256-{_style_hash()}'; img-src 'none'; "
        f"form-action 'self' {form_schemes}; base-uri 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def ledger_page(page: Page, page_token: str) -> str:
    """The ledgers offered, each a form of its own (its questions, then its button)."""
    organisation = page.session.get("end_user", {}).get("organization_name")
    whose = f" for {escape(organisation)}" if organisation else ""
    forms = "".join(_ledger_form(ledger, page_token) for ledger in page.ledgers)
    body = (
        f"<h1>Connect your accounting software{whose}</h1>"
        "<p>Choose your ledger. You will sign in there and allow access; nothing is shared until"
        " you do.</p>"
        f"<fieldset><legend>Your ledger</legend>{forms}</fieldset>"
        '<p class="note">This link is yours alone and expires 30 minutes after it was created.</p>'
    )
    return _document("Connect your accounting software", body)


def _ledger_form(ledger: Ledger, page_token: str) -> str:
    action = f"/connect/{escape(page_token)}"
    fields = "".join(_select(ledger, choice) for choice in ledger.choices)
    return (
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="provider" value="{escape(ledger.name)}">'
        f"{fields}"
        f'<button type="submit" id="connect-{escape(ledger.name)}">Connect {escape(ledger.title)}</button>'
        "</form>"
    )


def _select(ledger: Ledger, choice: ConnectChoice) -> str:
    setting, label = escape(choice.setting), escape(choice.label)
    control = f"{escape(ledger.name)}-{setting}"
    options = "".join(
        f'<option value="{escape(value)}"{" selected" if value == choice.default else ""}>'
        f"{escape(text)}</option>"
        for value, text in choice.options
    )
    return f'<label for="{control}">{label}</label><select id="{control}" name="{setting}">{options}</select>'


def tenant_page(choice: TenantChoice) -> str:
    links = "".join(
        f'<li><a class="button" href="{escape(url)}">{escape(name)}</a></li>' for url, name in choice.tenants
    )
    body = (
        "<h1>Choose the company to connect</h1>"
        "<p>Your sign-in gives access to several companies. Pick the one this connection is for.</p>"
        f'<ul aria-label="Companies">{links}</ul>'
    )
    return _document("Choose the company to connect", body)


def sandbox_consent_page(approve_url: str, refuse_url: str) -> str:
    body = (
        "<h1>Sandbox ledger: allow access?</h1>"
        "<p>This is Ledgerbridge's built-in demo ledger, standing in for a provider's consent"
        " screen. Allow, and a sandbox connection is created.</p>"
        f'<p><a class="button" id="approve" href="{escape(approve_url)}">Allow</a> '
        f'<a class="button secondary" id="refuse" href="{escape(refuse_url)}">Deny</a></p>'
    )
    return _document("Sandbox ledger: allow access?", body)


def message_page(title: str, message: str) -> str:
    return _document(title, f"<h1>{escape(title)}</h1><p>{escape(message)}</p>")
