"""Build step of the dependency layer: package ``__init__`` modules that only re-export names
from their submodules are rewritten to import each submodule on first use (PEP 562).

Why: Python runs a package's ``__init__`` before any of its submodules, and two of Powertools'
import everything they hold. ``aws_lambda_powertools.event_handler`` imports every resolver
(AppSync's loads asyncio; Bedrock agents, VPC Lattice, function URLs, the REST resolver), and
``aws_lambda_powertools.utilities.data_classes`` every event class (CodePipeline's loads
tempfile and zipfile). The API function needs the HTTP API resolver and its (2.0) event:
the rest cost every cold start 10-20 ms of CPU (dev machine, Lambda's Python 3.12, make bench).

The rewrite keeps the docstring and ``__all__`` and turns each ``from <module> import <name>``
into an entry of a table that a module ``__getattr__`` reads: the first use of a name imports
its module, as the original line did, and keeps the value. ``package.Name``, ``from package
import Name``, ``import *`` and ``dir()`` answer as before. A name that is also the name of one
of the package's submodules (``data_classes.event_source``) stays an eager import: importing
that submodule would otherwise set the package's attribute to the module, not the function.

Anything else in such an ``__init__`` (code, an import of a whole module, a name of ``__all__``
imported from nowhere) makes the build fail, file untouched: a Powertools release that puts
more there is looked at, not rewritten blindly. tests/integration/test_lazy_packages.py runs
the API function on the rewritten packages.

Usage: python lazy_packages.py <site directory> <package> [<package> ...]
"""

from __future__ import annotations

import ast
import pprint
import sys
from pathlib import Path

HEADER = "# Rewritten at build time by layers/dependencies/lazy_packages.py: see its docstring.\n"
LOADER = """
import importlib as _importlib

_LAZY = {table}


def __getattr__(name):
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {{__name__!r}} has no attribute {{name!r}}") from None
    value = getattr(_importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted({{*globals(), *_LAZY}})
"""


class Refused(Exception):
    """The ``__init__`` holds something the rewrite does not know to be safe to defer."""


def _absolute(package: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _exported(node: ast.stmt) -> list[str] | None:
    """The names of ``__all__ = [...]``, or None if ``node`` is not that."""
    if not (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]):
        return None
    if not isinstance(node.value, ast.List | ast.Tuple):
        raise Refused("__all__ is not a literal list")
    names = [item.value for item in node.value.elts if isinstance(item, ast.Constant)]
    if len(names) != len(node.value.elts) or not all(isinstance(name, str) for name in names):
        raise Refused("__all__ holds something other than strings")
    return names


def rewrite(source: str, package: str, submodules: set[str]) -> str:
    """The lazy form of ``package``'s ``__init__`` source; raises Refused."""
    tree = ast.parse(source)
    kept: list[str] = []  # source lines kept as they are, in order
    table: dict[str, tuple[str, str]] = {}
    exported: list[str] = []
    for index, node in enumerate(tree.body):
        text = ast.get_source_segment(source, node) or ""
        if index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            kept.append(text)  # the docstring
        elif isinstance(node, ast.ImportFrom) and node.module == "__future__":
            kept.append(text)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(package, node)
            for alias in node.names:
                name = alias.asname or alias.name
                if alias.name == "*":
                    raise Refused(f"line {node.lineno}: import *")
                if name in submodules:
                    kept.append(f"from {module} import {alias.name} as {name}")
                else:
                    table[name] = (module, alias.name)
        elif (names := _exported(node)) is not None:
            exported = names
        else:
            raise Refused(f"line {node.lineno}: {text.splitlines()[0] if text else type(node).__name__}")
    bound = set(table) | {line.rsplit(" ", 1)[-1] for line in kept if line.startswith("from ")}
    missing = [name for name in exported if name not in bound]
    if missing:
        raise Refused(f"__all__ names what no import binds: {missing}")
    return (
        HEADER
        + "\n".join(kept)
        + f"\n\n__all__ = {pprint.pformat(exported, width=110)}\n"
        + LOADER.format(table=pprint.pformat(dict(sorted(table.items())), width=110))
    )


def rewrite_package(site: Path, package: str) -> None:
    directory = site.joinpath(*package.split("."))
    init = directory / "__init__.py"
    submodules = {path.stem for path in directory.glob("*.py")} | {
        path.parent.name for path in directory.glob("*/__init__.py")
    }
    submodules.discard("__init__")
    init.write_text(rewrite(init.read_text(encoding="utf-8"), package, submodules), encoding="utf-8")


def main(arguments: list[str]) -> int:
    site, *packages = arguments
    for package in packages:
        try:
            rewrite_package(Path(site), package)
        except Refused as refused:
            print(f"lazy_packages: {package}/__init__.py not rewritten: {refused}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
