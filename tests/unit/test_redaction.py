"""redaction.provider_text: the provider's message kept, credentials blanked, one bounded line."""

from __future__ import annotations

import pytest

from ledgerbridge.redaction import MAX_MESSAGES, MESSAGE_LIMIT, REDACTED, provider_messages, provider_text

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJyZWFsbS0xIn0.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize(
    "message",
    [
        "Duplicate Document Number Error: Duplicate Document Number Error : You must specify a different "
        "number. This number has already been used. DocNumber=1042 is assigned to TxnType=Invoice",
        "Invalid Reference Id : Something you're trying to use has been made inactive.",
        "The Basic plan does not allow multi-currency invoices.",
        "Bearer token expired; authorization failed for this company.",
        "Account code '200' is not a valid code for this document; see api.xero.com v2.0.1",
        'Line 3: "quantity" must be positive (token_type bearer)',
        "invalid_token: The access token has expired",
        "The password policy of this organisation forbids it.",
    ],
)
def test_plain_messages_are_unchanged(message: str) -> None:
    assert provider_text(message) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sent Bearer sk_live_51HabcXYZ123 and failed", f"sent Bearer {REDACTED} and failed"),
        ("header was bearer abcDEF0123456789", f"header was bearer {REDACTED}"),
        ("client auth Basic Y2xpZW50LWlkOnNlY3JldA== refused", f"client auth Basic {REDACTED} refused"),
        ("Authorization: Bearer abc.def-123 was refused", f"Authorization: {REDACTED} was refused"),
        ("authorization=Zm9vOmJhcg==&x=1", f"authorization={REDACTED}&x=1"),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", f"Proxy-Authorization: {REDACTED}"),
        (
            '{"headers": {"Authorization": "Bearer opaque"}}',
            f'{{"headers": {{"Authorization": "{REDACTED}"}}}}',
        ),
        ('{\\"Authorization\\": \\"Basic Zm9v\\"}', f'{{\\"Authorization\\": \\"{REDACTED}\\"}}'),
    ],
)
def test_credentials_and_authorization_headers_are_redacted(text: str, expected: str) -> None:
    assert provider_text(text) == expected


@pytest.mark.parametrize(
    "key",
    [
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "code_verifier",
        "password",
        "api_key",
        "apiKey",
        "x-api-key",
        "AccessToken",
        "x_refresh_token",
    ],
)
def test_secret_keys_are_redacted_in_json_form_and_key_value_text(key: str) -> None:
    assert provider_text(f'{{"{key}": "v4lue-1", "token_type": "bearer"}}') == (
        f'{{"{key}": "{REDACTED}", "token_type": "bearer"}}'
    )
    assert provider_text(f"{{'{key}': 'v4lue-1'}}") == f"{{'{key}': '{REDACTED}'}}"
    assert provider_text(f"grant_type=x&{key}=v4lue-1&client_id=cid") == (
        f"grant_type=x&{key}={REDACTED}&client_id=cid"
    )
    assert provider_text(f"{key}: v4lue-1, then more") == f"{key}: {REDACTED}, then more"


def test_a_json_value_is_redacted_whole_and_other_keys_are_kept() -> None:
    body = '{"access_token": "at 1 2 3", "expires_in": 3600, "access_token_expires_in": 60}'
    assert (
        provider_text(body)
        == f'{{"access_token": "{REDACTED}", "expires_in": 3600, "access_token_expires_in": 60}}'
    )


def test_jwts_are_redacted_but_dotted_words_are_not() -> None:
    assert provider_text(f"id {JWT} refused") == f"id {REDACTED} refused"
    assert provider_text("version 1.2.3 at api.xero.com") == "version 1.2.3 at api.xero.com"


def test_known_secrets_are_redacted_wherever_they_appear() -> None:
    text = "token at-9f8e7d6c5b, again at-9f8e7d6c5bX, encoded rt%2Fq%2B12345 and the app's s3cr3t-client"
    assert provider_text(text, ["at-9f8e7d6c5b", "rt/q+12345", "s3cr3t-client"]) == (
        f"token {REDACTED}, again {REDACTED}X, encoded {REDACTED} and the app's {REDACTED}"
    )


def test_a_longer_secret_is_redacted_before_one_it_contains() -> None:
    assert provider_text("x abcdefgh-ijkl y", ["abcdefgh", "abcdefgh-ijkl"]) == f"x {REDACTED} y"


def test_known_secrets_shorter_than_8_characters_are_not_redacted() -> None:
    assert provider_text("the sandbox said no", ["sandbox", "", "said"]) == "the sandbox said no"
    assert provider_text("the sandbox1 said no", ["sandbox1"]) == f"the {REDACTED} said no"


def test_control_characters_collapse_to_one_space() -> None:
    text = 'first\r\n  {"level":"ERROR","message":"forged"}\x00\t\x1b[31mred\x7f\u2028end\n'
    assert provider_text(text) == 'first {"level":"ERROR","message":"forged"} [31mred end'


def test_long_messages_are_cut_with_an_ellipsis() -> None:
    cut = provider_text("word " * 200)
    assert len(cut) == MESSAGE_LIMIT
    assert cut.endswith("…") and cut.startswith("word word")
    assert provider_text("x" * MESSAGE_LIMIT) == "x" * MESSAGE_LIMIT


def test_a_secret_is_redacted_before_the_cut_so_no_half_of_it_remains() -> None:
    secret = "s" * 30
    text = "x" * (MESSAGE_LIMIT - 10) + secret
    cut = provider_text(text, [secret])
    assert "sssss" not in cut and len(cut) == MESSAGE_LIMIT


def test_redacting_twice_changes_nothing() -> None:
    once = provider_text(
        f'Authorization: Bearer {JWT} {{"refresh_token": "r-1234567"}} api_key=k1', ["k1k1k1k1"]
    )
    assert provider_text(once) == once


def test_messages_are_each_cleaned_and_capped_in_number() -> None:
    assert provider_messages(["a\nb", "Bearer abc123def456"]) == ["a b", f"Bearer {REDACTED}"]
    many = provider_messages([f"line {n}" for n in range(1, 101)], ["unused-secret"])
    assert len(many) == MAX_MESSAGES
    assert many[: MAX_MESSAGES - 1] == [f"line {n}" for n in range(1, MAX_MESSAGES)]
    assert many[-1] == f"… and {100 - MAX_MESSAGES + 1} more"
    exactly = [f"line {n}" for n in range(MAX_MESSAGES)]
    assert provider_messages(exactly) == exactly
