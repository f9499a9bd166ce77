"""The local stack over real HTTP: routes from template.yaml, served by the template's handler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import LocalStack

pytestmark = pytest.mark.e2e


def test_stack_serves_openapi(local_stack: LocalStack) -> None:
    response = httpx.get(f"{local_stack.api_url}/openapi.json", timeout=10)
    assert response.status_code == 200, response.text
    assert "/accounting/invoices" in response.json()["paths"]
