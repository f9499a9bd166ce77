"""The mutation fuzzer: valid invoices, mutated one aspect at a time, each a category.

Each category (see :data:`tests.fuzz.strategies.CATEGORIES`) is one test per round, with a
fresh moto account and its share of the request budget. Hypothesis only generates here:
a fixed seed per category and round (the same requests every run), no example database, no
shrinking. Each example is one request, judged by the oracle and tallied; the test fails at
the end if any broke a rule, showing the first few offenders of each kind.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from tests.fuzz.harness import Harness, round_seed, rounds, share
from tests.fuzz.strategies import CATEGORIES, Context, Probe, invoice_pool, with_key

pytestmark = pytest.mark.fuzz
ROUNDS = [pytest.param(n, id=f"round{n + 1}") for n in range(rounds())]


@pytest.mark.parametrize("round_number", ROUNDS)
@pytest.mark.parametrize("category", list(CATEGORIES))
def test_mutations(harness: Harness, category: str, round_number: int) -> None:
    factory, weight = CATEGORIES[category]
    examples = share(weight)
    keys = itertools.count(1)
    context = Context(harness, invoice_pool(harness.refs, round_seed("pool", round_number)))

    @seed(round_seed(category, round_number))
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(factory(context))
    def send(probe: Probe) -> None:
        if probe.unique_key:
            probe = with_key(probe, f"fuzz-{category}-{round_number}-{next(keys)}")
        harness.exchange(
            category, probe.sent, expect_created=probe.expect_created, content_length=probe.content_length
        )

    send()
    ran = harness.recorder.requests
    assert ran >= 0.9 * examples, (
        f"{category}: Hypothesis ran {ran} of {examples} examples: too few distinct?"
    )
    harness.recorder.assert_clean()
