"""The shared fake consent screen holds clients to RFC 6749 4.1 and RFC 7636, as real ones do."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.fakes.consent import ConsentScreen, s256

REDIRECT = "https://ledgerbridge.test/connect/callback"
VERIFIER = "v" * 64


def screen(pkce: bool = True) -> ConsentScreen:
    return ConsentScreen(
        "/authorize", "cid", REDIRECT, ("accounting",), pkce, extras=lambda: {"realmId": "42"}
    )


def authorize(consent: ConsentScreen, **overrides: str) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": "cid",
        "redirect_uri": REDIRECT,
        "state": "s1",
        "scope": "accounting openid",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return consent.handle(httpx.Request("GET", "https://fake.test/authorize", params=params))


def follow(consent: ConsentScreen, page: httpx.Response, link: str) -> dict[str, list[str]]:
    href = re.search(rf'id="{link}" href="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    answer = consent.handle(httpx.Request("GET", "https://fake.test" + href))
    assert answer.status_code == 302 and answer.headers["location"].startswith(REDIRECT)
    return parse_qs(urlsplit(answer.headers["location"]).query)


def test_approving_redirects_with_a_single_use_code_bound_to_the_verifier() -> None:
    consent = screen()
    query = follow(consent, authorize(consent), "approve")
    assert (query["state"], query["realmId"]) == (["s1"], ["42"])
    grant = {"code": query["code"][0], "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    assert consent.exchange(grant, "cid") is None
    assert consent.exchange(grant, "cid") == "unknown or used code"


def test_a_wrong_verifier_or_redirect_is_refused() -> None:
    consent = screen()
    code = follow(consent, authorize(consent), "approve")["code"][0]
    assert "code_verifier" in consent.exchange(
        {"code": code, "redirect_uri": REDIRECT, "code_verifier": "x"}, "cid"
    )
    code = follow(consent, authorize(consent), "approve")["code"][0]
    assert "redirect_uri" in consent.exchange({"code": code, "redirect_uri": "https://evil.test/cb"}, "cid")


def test_refusing_redirects_with_access_denied() -> None:
    consent = screen()
    assert follow(consent, authorize(consent), "refuse") == {"error": ["access_denied"], "state": ["s1"]}


def test_bad_authorisation_requests_get_a_page_not_a_redirect() -> None:
    consent = screen()
    for overrides in ({"redirect_uri": "https://evil.test/cb"}, {"client_id": "other"}, {"state": ""},
                      {"scope": "openid"}, {"code_challenge_method": "plain"}):  # fmt: skip
        answer = authorize(consent, **overrides)
        assert answer.status_code == 400 and "location" not in answer.headers, overrides
    assert authorize(screen(pkce=False), code_challenge="", code_challenge_method="").status_code == 200
