"""What the API function's cold start (init, then the first create) does not pay for.

``make bench`` measures it against the floor; these tests pin the decisions behind the figure,
without timing anything:

- an invoice create imports nothing that only other routes, other functions or failures
  need: the contacts service and store, the HTTP stack of the ledgers (httpx), the X-Ray SDK
  (no ``Tracer`` in the API function: ``ledgerbridge.observability``), the retry queue and the
  redaction of provider text (``service._queue_retry``);
- the dependency layer's Powertools imports one resolver and one event class, not all of them
  (layers/dependencies/lazy_packages.py), and the API function answers the same on it;
- importing the handler freezes init's heap, so no collection walks it again
  (``ledgerbridge.snapstart``);
- a boto3 client, the first request's big allocation, is created with the cyclic collector
  paused, and the collector is left as it was, failure or not (``ledgerbridge.aws``).

The import checks run in fresh interpreters: this one has imported everything already.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import aws_lambda_powertools
import pytest

from ledgerbridge import aws

ROOT = Path(__file__).resolve().parents[2]
REWRITE = ROOT / "layers" / "dependencies" / "lazy_packages.py"
SAVED_DOCUMENT = ROOT / "tests" / "fixtures" / "openapi" / "api.json"


def _lazy_packages() -> list[str]:
    """The packages the dependency layer's Makefile has rewritten."""
    makefile = (ROOT / "layers" / "dependencies" / "Makefile").read_text()
    [names] = re.findall(r"^LAZY_PACKAGES := (.+)$", makefile, re.MULTILINE)
    return names.split()


LAZY = _lazy_packages()


def _fresh(code: str, first_on_path: Path | None = None) -> Any:
    """Run ``code`` in a new interpreter (``first_on_path`` ahead of the venv); its last line, as JSON."""
    env = {**os.environ}
    if first_on_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(first_on_path), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _rewrite(site: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    """Run the build step as layers/dependencies/Makefile does."""
    return subprocess.run(
        [sys.executable, str(REWRITE), str(site), *packages], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def layer_powertools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's Powertools (the layer's pin) with the layer's build step applied, in a site of its own."""
    site = tmp_path_factory.mktemp("layer") / "python"
    shutil.copytree(Path(aws_lambda_powertools.__file__).parent, site / "aws_lambda_powertools")
    result = _rewrite(site, *LAZY)
    assert result.returncode == 0, result.stderr
    return site


# --- the first requests, on Powertools as installed and as the layer ships it ----------------

# Serves an invoice create as the first request of a fresh API function, noting which of the
# watched modules it loaded, then a list, a contact create and the OpenAPI document.
_FIRST_REQUESTS = """
import json, os, sys
from tests.conftest import FakeLambdaContext, load_handler_module
from tests.integration.conftest import Api, demo_credentials, seeded_stack
WATCHED = ("ledgerbridge.contacts", "ledgerbridge.providers.http", "httpx", "aws_xray_sdk",
           "ledgerbridge.retries", "ledgerbridge.redaction", "ledgerbridge.store.contacts",
           "aws_lambda_powertools.event_handler.appsync",
           "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event")
def loaded():
    return sorted(name for name in WATCHED if name in sys.modules)
with seeded_stack() as demo:
    before = loaded()
    api = Api(load_handler_module(), FakeLambdaContext(), demo_credentials(demo))
    statuses = [api.create({"currency": "EUR", "line_items": [{"quantity": 1, "unit_price": 2}]}).status]
    after_invoice = loaded()
    statuses.append(api.call("GET", "/accounting/invoices", query={"limit": "1"}).status)
    statuses.append(api.call("POST", "/accounting/contacts", body={"name": "Umbrella Corp"}).status)
    after_contact = loaded()
    document = api.call("GET", "/openapi.json", auth=False)
    statuses.append(document.status)
with open(sys.argv[1], encoding="utf-8") as saved:
    same_document = document.text + "\\n" == saved.read()
print(json.dumps([before, statuses, after_invoice, after_contact, same_document]))
"""

_POWERTOOLS_EAGER = ["aws_lambda_powertools.event_handler.appsync",
                     "aws_lambda_powertools.utilities.data_classes.code_pipeline_job_event"]  # fmt: skip


def _first_requests(first_on_path: Path | None = None) -> list[Any]:
    code = _FIRST_REQUESTS.replace("sys.argv[1]", repr(str(SAVED_DOCUMENT)))
    return _fresh(code, first_on_path)


def test_an_invoice_create_loads_neither_contacts_nor_the_ledgers_http_nor_xray() -> None:
    before, statuses, after_invoice, after_contact, same_document = _first_requests()
    assert before == []  # the harness loads none of them: what follows is the handler's doing
    assert statuses == [201, 200, 201, 200]
    assert after_invoice == _POWERTOOLS_EAGER  # Powertools as installed: its whole event_handler
    assert "ledgerbridge.contacts" in after_contact  # the route that needs it loads it
    assert same_document


def test_on_the_layers_powertools_a_create_loads_one_resolver_and_answers_the_same(
    layer_powertools: Path,
) -> None:
    before, statuses, after_invoice, after_contact, same_document = _first_requests(layer_powertools)
    assert before == []
    assert statuses == [201, 200, 201, 200]
    assert after_invoice == []
    assert "ledgerbridge.contacts" in after_contact
    assert same_document  # the OpenAPI generator finds what it needs on the rewritten packages


# --- the rewrite itself -----------------------------------------------------------------------

_RESOLVER_ONLY = """
import json, sys
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
print(json.dumps(sorted(name for name in ("asyncio", "zipfile", "tempfile") if name in sys.modules)))
"""


def test_the_http_resolver_alone_loads_neither_asyncio_nor_zipfile(layer_powertools: Path) -> None:
    assert _fresh(_RESOLVER_ONLY) == ["asyncio", "tempfile", "zipfile"]  # Powertools as installed
    assert _fresh(_RESOLVER_ONLY, layer_powertools) == []


# For each package: what each name of __all__ is (module and qualified name), whether dir()
# lists it, and whether ``import *`` binds it.
_EXPORTS = """
import importlib, json, sys
def describe(value):
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
found = {}
for package in sys.argv[1:]:
    module = importlib.import_module(package)
    star = {}
    exec(f"from {package} import *", star)
    found[package] = {name: [describe(getattr(module, name)), name in dir(module), name in star]
                      for name in module.__all__}
print(json.dumps(found))
"""


def test_every_exported_name_is_what_it_was(layer_powertools: Path) -> None:
    code = _EXPORTS.replace("sys.argv[1:]", repr(LAZY))
    assert _fresh(code, layer_powertools) == _fresh(code)


def test_a_name_that_is_also_a_submodule_stays_what_the_package_exports(layer_powertools: Path) -> None:
    code = (
        "import json, aws_lambda_powertools.utilities.data_classes.event_source\n"
        "from aws_lambda_powertools.utilities.data_classes import event_source\n"
        "print(json.dumps(type(event_source).__name__))"
    )
    assert _fresh(code, layer_powertools) == _fresh(code) == "function"


def test_the_layer_build_rewrites_after_installing_and_before_compiling(tmp_path: Path) -> None:
    dry_run = subprocess.run(
        [
            "make",
            "-n",
            "-s",
            "-C",
            str(REWRITE.parent),
            "build-DependenciesLayer",
            f"ARTIFACTS_DIR={tmp_path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rewrite = f'"{REWRITE}" "{tmp_path}/python" {" ".join(LAZY)}'
    assert dry_run.index("pip install") < dry_run.index(rewrite) < dry_run.index("compileall")


@pytest.mark.parametrize(
    ("init", "reason"),
    [
        ("from .a import A\nSETTING = 1\n__all__ = ['A']\n", "line 2: SETTING = 1"),
        ("from .a import A\n__all__ = ['A', 'B']\n", "__all__ names what no import binds: ['B']"),
        ("from . import a\nimport os\n", "line 2: import os"),
    ],
)
def test_an_init_holding_anything_else_fails_the_build_untouched(
    tmp_path: Path, init: str, reason: str
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "a.py").write_text("class A: ...\n")
    result = _rewrite(tmp_path, "package")
    assert result.returncode == 1
    assert reason in result.stderr
    assert (package / "__init__.py").read_text() == init


# --- the collector --------------------------------------------------------------------------

# Imports the API function as Lambda does (its module by name, from its own directory) and
# reports how many of the objects the collector tracks init left frozen, and how many not.
_IMPORT_ONLY = f"""
import gc, json, sys
sys.path.insert(0, {str(ROOT / "functions" / "api")!r})
import app
print(json.dumps([gc.get_freeze_count(), len(gc.get_objects()), gc.isenabled()]))
"""


def test_importing_the_api_function_freezes_inits_heap() -> None:
    frozen, tracked, collecting = _fresh(_IMPORT_ONLY)
    # Nearly everything init built is frozen: what is not is what app.py and the last of its
    # imports made after ledgerbridge.snapstart, a small fraction.
    assert frozen > 20_000
    assert tracked < frozen / 10
    assert collecting  # paused while init built its heap, and only then


class _Session:
    """Stands in for boto3's Session: records whether the collector ran while a client was made."""

    collecting: ClassVar[list[bool]] = []
    fail = False

    def client(self, service: str, config: Any) -> str:
        _Session.collecting.append(gc.isenabled())
        if _Session.fail:
            raise RuntimeError("no such service")
        return f"client of {service}"


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Session]]:
    monkeypatch.setattr(aws.boto3.session, "Session", _Session)
    _Session.collecting, _Session.fail = [], False
    aws.client.cache_clear()
    was = gc.isenabled()
    try:
        yield _Session
    finally:
        aws.client.cache_clear()
        (gc.enable if was else gc.disable)()


def test_a_client_is_made_with_the_collector_paused_then_resumed(session: type[_Session]) -> None:
    gc.enable()
    assert aws.client("dynamodb") == "client of dynamodb"
    assert session.collecting == [False]
    assert gc.isenabled()


def test_the_collector_resumes_when_making_a_client_fails(session: type[_Session]) -> None:
    gc.enable()
    session.fail = True
    with pytest.raises(RuntimeError):
        aws.client("dynamodb")
    assert session.collecting == [False]
    assert gc.isenabled()


def test_a_collector_paused_by_someone_else_stays_paused(session: type[_Session]) -> None:
    gc.disable()
    aws.client("kms")
    assert session.collecting == [False]
    assert not gc.isenabled()
