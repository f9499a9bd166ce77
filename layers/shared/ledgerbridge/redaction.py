"""Provider text made safe to answer, store and log: the message kept, credentials blanked.

A ledger's error message is relayed to the caller (the 422 body), stored on the invoice
(``sync_error``) and logged, because it is what tells a person what to fix. Some ledgers
echo the request they refused, headers and all, so that text may carry the connection's
access token, refresh token or OAuth client secret. Everything a provider wrote passes
through ``provider_text`` before it leaves ``service``/``redelivery``; the message stays
readable and only what looks like a credential becomes ``[redacted]``:

- the connection's own secrets (its tokens and the OAuth app's client secret, whatever
  ``connections.known_secrets`` holds), as exact substrings and percent-encoded. Only those
  of at least ``MIN_SECRET_LENGTH`` characters: a short value (a test token, a placeholder)
  would blank ordinary words out of every message, and real tokens and secrets are longer.
- ``Authorization:`` header values (scheme included), in header, JSON and form forms.
- ``Bearer``/``Basic`` credentials, when the word after the scheme looks like one (8 or more
  characters with a digit, a symbol or mixed case), so "Basic plan" or "bearer token
  expired" stay as written.
- values of secret-named keys (``access_token``, ``refresh_token``, ``id_token``,
  ``client_secret``, ``code_verifier``, ``password``, ``api_key``, ``x-api-key``, ...), in
  JSON (``"access_token": "..."``), form (``access_token=...&``) and ``key: value`` forms.
- JWTs: three or more base64url segments whose first starts with ``eyJ`` (a JSON header
  encoded). Requiring ``eyJ`` keeps version numbers and host names (``api.xero.com``) intact.

Then runs of control characters (newlines included) become one space, so a message cannot
forge log lines, and each message is cut to ``MESSAGE_LIMIT`` characters. Redaction comes
before the cut: cutting first could leave the front half of a secret behind.

A refusal's messages are also capped in number (``MAX_MESSAGES``): a ledger answering one
message per line of a 1000-line invoice would otherwise put ~1000 messages in the body, the
stored item and one log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[redacted]"
# Long enough for every message the recorded exchanges and fakes hold (the longest, a
# QuickBooks duplicate-number Fault, is ~230 characters), short enough that MAX_MESSAGES
# of them stay ~10 KB: small in a 422 body, in a DynamoDB item that also holds up to 1000
# lines (400 KB in all), and in one CloudWatch log event.
MESSAGE_LIMIT = 500
MAX_MESSAGES = 20
MIN_SECRET_LENGTH = 8

_CONTROL = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_CONTROL_RUN = re.compile(rf"\s*[{_CONTROL}][\s{_CONTROL}]*")
_AUTHORIZATION = re.compile(
    r"(?P<name>(?<![A-Za-z0-9])(?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?:(?:bearer|basic|digest|token|oauth|negotiate|hawk|apikey)\s+)?"
    r"[^\s\"'\\,;&<>{}\[\]()]+",
    re.IGNORECASE,
)
_SCHEME_CREDENTIAL = re.compile(
    r"(?P<scheme>(?<![A-Za-z0-9])(?:bearer|basic))\s+(?P<credential>[A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE
)
_SECRET_KEY = (
    r"(?:access|refresh|id|auth|session)[_-]?token|client[_-]?secret|secret[_-]?key|private[_-]?key"
    r"|code[_-]?verifier|passw(?:or)?d|passphrase|(?:x[_-])?api[_-]?key"
)
_ASSIGNMENT = re.compile(
    rf"(?P<key>(?<![A-Za-z0-9])(?:{_SECRET_KEY})(?![A-Za-z0-9])\\?[\"']?\s*[:=]\s*)"
    r"(?:(?P<quote>\\?[\"'])(?P<quoted>.*?)(?P=quote)|[^\s\"'&,;<>{}\[\]()]+)",
    re.IGNORECASE,
)
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*){2,4}")


def _looks_like_credential(word: str) -> bool:
    rest = word[1:]
    return len(word) >= 8 and (
        any(not char.isalpha() for char in word) or (rest != rest.lower() and rest != rest.upper())
    )


def _scheme(match: re.Match[str]) -> str:
    if not _looks_like_credential(match["credential"]):
        return match[0]
    return f"{match['scheme']} {REDACTED}"


def _assignment(match: re.Match[str]) -> str:
    quote_mark = match["quote"] or ""
    return f"{match['key']}{quote_mark}{REDACTED}{quote_mark}"


def provider_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with credentials replaced by ``[redacted]``, on one line, at most MESSAGE_LIMIT characters.

    ``secrets`` are values known to be secret (the connection's tokens, the app's client
    secret); those shorter than MIN_SECRET_LENGTH are ignored.
    """
    text = _CONTROL_RUN.sub(" ", text).strip()
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, REDACTED)
    text = _AUTHORIZATION.sub(lambda match: match["name"] + REDACTED, text)
    text = _SCHEME_CREDENTIAL.sub(_scheme, text)
    text = _ASSIGNMENT.sub(_assignment, text)
    text = _JWT.sub(REDACTED, text)
    if len(text) > MESSAGE_LIMIT:
        text = text[: MESSAGE_LIMIT - 1].rstrip() + "…"
    return text


def provider_messages(messages: Iterable[str], secrets: Iterable[str] = ()) -> list[str]:
    """A refusal's messages, each through ``provider_text``; past MAX_MESSAGES, a count instead.

    At most MAX_MESSAGES come back: the first MAX_MESSAGES - 1 and "… and N more" when
    there are too many.
    """
    messages, secrets = list(messages), tuple(secrets)
    shown = messages if len(messages) <= MAX_MESSAGES else messages[: MAX_MESSAGES - 1]
    cleaned = [provider_text(str(message), secrets) for message in shown]
    if len(shown) < len(messages):
        cleaned.append(f"… and {len(messages) - len(shown)} more")
    return cleaned
