"""Schemathesis against the served /openapi.json: every operation, positive and negative data.

The schema is loaded from the local stack's front door as a WSGI application
(``schemathesis.openapi.from_wsgi``), so each case travels as HTTP through the same gateway,
proxy event and handler as ``make run``. Five cases in six carry the demo credentials, the
others none (Schemathesis generates no security headers here: the credentials are the
test's to give or withhold; see ``_authenticate`` for the connection token, which is also a
documented header parameter). Every response, including those Schemathesis's checks send on
their own, is judged by the fuzz oracle; on top of that every Schemathesis check enabled by
default must pass (``not_a_server_error``, ``status_code_conformance``,
``content_type_conformance``, ``response_headers_conformance``,
``response_schema_conformance``, ``negative_data_rejection``, ``missing_required_header``,
``unsupported_method``, ``ignored_auth``, ...) but one: ``positive_data_acceptance`` expects
every schema-valid request to succeed, and here many cannot, by rules no schema states (a
well-formed contact_id that is not this connection's, a due_date before the issue_date, a
garbage cursor, totals the ledger refuses).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.harness import Harness, round_seed, rounds, share
from tests.fuzz.local_api import Received, Sent
from tests.fuzz.strategies import one_in

WEIGHT = 0.2  # of the suite's request budget
EXCLUDED_CHECKS = [positive_data_acceptance]  # see the module docstring
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
pytestmark = pytest.mark.fuzz
ROUNDS = [pytest.param(n, id=f"round{n + 1}") for n in range(rounds())]


def _failures(error: BaseException) -> list[BaseException]:
    nested = getattr(error, "exceptions", None)
    return [leaf for inner in nested for leaf in _failures(inner)] if nested else [error]


def run_cases(
    harness: Harness,
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    examples: int,
    last: dict[str, tuple[Sent, Received]],
    state: dict[str, str],
    seed_value: int,
) -> None:
    """``examples`` cases of one operation in one generation mode, called and checked."""
    category = f"schemathesis {mode.value}"
    credentials = dict(harness.demo.headers())
    api_key = {"x-api-key": credentials["x-api-key"]}

    @seed(seed_value)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), anonymous=one_in(6))
    def run(case: schemathesis.Case, anonymous: bool) -> None:
        state["category"] = category
        headers = None if anonymous else _authenticate(case, credentials, api_key)
        response = case.call(headers=headers)
        sent, received = last["exchange"]  # the case's own (checks may send more)
        try:
            case.validate_response(
                response,
                excluded_checks=EXCLUDED_CHECKS,
                headers=headers,
                transport_kwargs={"headers": headers},
            )
        except (AssertionError, FailureGroup) as error:  # the checks that failed
            for failure in _failures(error):
                title = getattr(failure, "title", type(failure).__name__)
                message = " ".join(str(getattr(failure, "message", failure)).split())[:300]
                harness.recorder.add("schemathesis_checks", category, f"{title}: {message}", sent, received)

    run()


def _authenticate(case: schemathesis.Case, credentials: dict[str, str], api_key: dict[str, str]) -> dict:
    """The project's key, sent with the call and with every request the checks make.

    ``x-connection-token`` is also a documented (required) header parameter, so Schemathesis
    generates it: a generated value is replaced by the connection's token, and a case that
    leaves it out (negative data, ``missing_required_header``) keeps it out, to be the 401.
    """
    if case.headers and "x-connection-token" in case.headers:
        case.headers["x-connection-token"] = credentials["x-connection-token"]
    return api_key


@pytest.mark.parametrize("round_number", ROUNDS)
def test_every_operation_with_schemathesis(harness: Harness, round_number: int) -> None:
    last: dict[str, tuple[Sent, Received]] = {}
    state = {"category": "schemathesis setup"}  # loading the schema

    def record(sent: Sent, received: Received) -> None:
        last["exchange"] = (sent, received)
        harness.recorder.record(state["category"], sent, received)

    app = harness.api.wsgi(record)
    config = schemathesis.Config()
    # The credentials are the test's to give (or withhold), not Schemathesis's to generate: a
    # negative case whose only fault is a missing or mangled x-api-key would be "fixed" by them.
    config.projects.default.generation.update(with_security_parameters=False)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {(m.upper(), p) for p, ms in harness.oracle.contract.document["paths"].items() for m in ms}
    assert {(op.method.upper(), op.path) for op in operations} == documented
    per_run = max(5, share(WEIGHT) // (len(operations) * len(MODES)))

    for operation in operations:
        for mode in MODES:
            seed_value = round_seed("schemathesis", operation.label, mode.value, round_number)
            run_cases(harness, operation, mode, per_run, last, state, seed_value)
    assert harness.recorder.requests >= len(operations) * len(MODES) * per_run
    harness.recorder.assert_clean()
