"""A provider's OAuth consent screen and authorisation-code grant, shared by the provider fakes.

Each fake mounts a ``ConsentScreen`` at its authorisation path and hands it the
``grant_type=authorization_code`` requests its token endpoint receives. What it holds a
client to is RFC 6749 section 4.1 and RFC 7636 (PKCE), the parts every ledger here follows:

- the authorisation request: ``response_type=code``, the registered ``client_id`` and
  ``redirect_uri``, every scope the fake's ledger requires, a ``state``, and (where the ledger
  takes PKCE) an S256 ``code_challenge``; anything wrong is a 400 page, never a redirect
  (an authorisation server must not redirect to an unverified URI);
- the page: plain HTML with ``<a id="approve">`` and ``<a id="refuse">``, what a person (or a
  test reading the links) clicks; approving redirects with ``code`` and ``state`` (plus the
  ledger's own extras, such as QuickBooks' ``realmId``), refusing with
  ``error=access_denied`` and ``state``;
- the code exchange: single use, the same ``client_id`` and ``redirect_uri``, the verifier
  whose S256 is the challenge; a refused exchange is 400 ``invalid_grant``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

DECIDE_PATH_SUFFIX = "/decide"


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge of ``verifier``."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class IssuedCode:
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str
    used: bool = False


@dataclass
class ConsentScreen:
    """One ledger's consent screen. ``extras`` adds query parameters to the approving redirect."""

    path: str  # where the authorisation endpoint is mounted, e.g. /connect/oauth2
    client_id: str
    redirect_uri: str
    required_scopes: tuple[str, ...]
    pkce: bool
    extras: Callable[[], dict[str, str]] = dict
    scope_separator: str = " "
    codes: dict[str, IssuedCode] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)

    def handles(self, request: httpx.Request) -> bool:
        return request.url.path in (self.path, self.path + DECIDE_PATH_SUFFIX)

    def handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        problem = self._problem(params)
        if problem:
            return _page(400, f"<h1>Invalid request</h1><p>{html.escape(problem)}</p>")
        if request.url.path.endswith(DECIDE_PATH_SUFFIX):
            return self._decide(params)
        return self._consent_page(params)

    def _problem(self, params: dict[str, str]) -> str | None:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") != self.client_id:
            return "unknown client_id"
        if params.get("redirect_uri") != self.redirect_uri:
            return "redirect_uri is not the one registered"
        if not params.get("state"):
            return "state is required"
        granted = set((params.get("scope") or "").split(self.scope_separator))
        missing = [scope for scope in self.required_scopes if scope not in granted]
        if missing:
            return f"missing scopes: {', '.join(missing)}"
        if self.pkce and (params.get("code_challenge_method") != "S256" or not params.get("code_challenge")):
            return "PKCE with code_challenge_method=S256 is required"
        return None

    def _consent_page(self, params: dict[str, str]) -> httpx.Response:
        approve = f"{self.path}{DECIDE_PATH_SUFFIX}?{urlencode({**params, 'decision': 'approve'})}"
        refuse = f"{self.path}{DECIDE_PATH_SUFFIX}?{urlencode({**params, 'decision': 'refuse'})}"
        body = (
            "<h1>Allow Ledgerbridge to use your books?</h1>"
            f'<a id="approve" href="{html.escape(approve)}">Allow</a> '
            f'<a id="refuse" href="{html.escape(refuse)}">Deny</a>'
        )
        return _page(200, body)

    def _decide(self, params: dict[str, str]) -> httpx.Response:
        if params.get("decision") != "approve":
            query = {"error": "access_denied", "state": params["state"]}
            return httpx.Response(302, headers={"location": f"{self.redirect_uri}?{urlencode(query)}"})
        code = secrets.token_urlsafe(24)
        self.codes[code] = IssuedCode(
            params["client_id"], params["redirect_uri"], params.get("code_challenge"), params.get("scope", "")
        )
        query = {"code": code, "state": params["state"], **self.extras()}
        return httpx.Response(302, headers={"location": f"{self.redirect_uri}?{urlencode(query)}"})

    def exchange(self, grant: dict[str, Any], client_id: str | None) -> str | None:
        """None when the code grant is good (the code is then used up), else the refusal's reason."""
        self.exchanges.append({key: str(value) for key, value in grant.items()})
        issued = self.codes.get(str(grant.get("code")))
        if issued is None or issued.used:
            return "unknown or used code"
        issued.used = True  # a second try with the same code fails even if this one does
        if client_id != issued.client_id or grant.get("redirect_uri") != issued.redirect_uri:
            return "client_id or redirect_uri differs from the authorisation request"
        if issued.code_challenge is not None or self.pkce:
            verifier = str(grant.get("code_verifier") or "")
            if not verifier or s256(verifier) != issued.code_challenge:
                return "code_verifier does not match the code_challenge"
        return None


def _page(status: int, body: str) -> httpx.Response:
    document = f"<!doctype html><html><head><title>Consent</title></head><body>{body}</body></html>"
    return httpx.Response(status, headers={"content-type": "text/html; charset=utf-8"}, text=document)


def invalid_grant(reason: str) -> httpx.Response:
    """The token endpoint's refusal of a code grant (RFC 6749 5.2)."""
    return httpx.Response(400, json={"error": "invalid_grant", "error_description": reason})


def query(url: str) -> dict[str, list[str]]:
    """A URL's query parameters, blank ones kept."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def click(
    client: httpx.Client, authorization_url: str, link_id: str, redirect_uri: str
) -> dict[str, list[str]]:
    """Open a fake's consent page, follow its ``approve``/``refuse`` link, and return the query the
    browser is redirected back to ``redirect_uri`` with (``code``/``state``, or ``error``)."""
    page = client.get(authorization_url)
    assert page.status_code == 200, page.text
    link = re.search(rf'<a id="{link_id}" href="([^"]+)"', page.text)
    assert link is not None, page.text
    redirect = client.get(urljoin(authorization_url, html.unescape(link.group(1))))
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(redirect_uri + "?"), location
    return query(location)


def single(parameters: dict[str, list[str]]) -> dict[str, str]:
    """Each parameter's first value."""
    return {name: values[0] for name, values in parameters.items()}
