"""The layers of docs/architecture.md, checked on the imports (ast) of every module.

spec, runtime, services, cluster and observe are the domain: none of them imports
what sits above it (the API façade and models, the manager, the front ends). The web app
does not import the manager, and the API façade imports no front end.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "vhpc"
DOMAIN = ("spec", "runtime", "services", "cluster", "observe")
ABOVE_DOMAIN = ("vhpc.api", "vhpc.models", "vhpc.web", "vhpc.server", "vhpc.cli",
                "vhpc.client", "vhpc.control", "vhpc.python_api", "vhpc.pytest_plugin")
# module (or package) -> what it must never import
RULES: dict[str, tuple[str, ...]] = {
    **{f"vhpc.{layer}": ABOVE_DOMAIN for layer in DOMAIN},
    "vhpc.models": ("vhpc.cluster", "vhpc.runtime", "vhpc.services", "vhpc.observe",
                    "vhpc.api", "vhpc.web", "vhpc.server", "vhpc.cli", "vhpc.control"),
    "vhpc.api": ("vhpc.web", "vhpc.server", "vhpc.cli", "vhpc.client", "vhpc.control",
                 "vhpc.python_api"),
    "vhpc.web": ("vhpc.server", "vhpc.cli", "vhpc.client", "vhpc.control",
                 "vhpc.python_api"),
    "vhpc.client": ("vhpc.api", "vhpc.web", "vhpc.server", "vhpc.cli", "vhpc.cluster"),
}


def module_name(path: Path) -> str:
    """vhpc.cluster.cluster for src/vhpc/cluster/cluster.py."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module an import statement names (relative imports resolved), at any depth:
    function-level and TYPE_CHECKING imports count too."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[:len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def violations(module: str, imports: set[str]) -> list[str]:
    """'module imports X' for every import the rules forbid."""
    out = []
    for owner, forbidden in RULES.items():
        if module != owner and not module.startswith(owner + "."):
            continue
        for name in sorted(imports):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{module} imports {name}")
    return out


def all_modules() -> list[Path]:
    """Every module of the package."""
    return sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_where_this_test_looks() -> None:
    names = {module_name(p) for p in all_modules()}
    assert {"vhpc.cluster.cluster", "vhpc.server.manager", "vhpc.web.app", "vhpc.api",
            "vhpc.models"} <= names
    assert "vhpc.cluster.manager" not in names  # the manager is the server package's


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: module_name(p))
def test_no_module_imports_a_layer_above_its_own(path: Path) -> None:
    module = module_name(path)
    imports = imported_modules(path.read_text(), module, path.name == "__init__.py")
    assert violations(module, imports) == []


def test_the_check_finds_a_forbidden_import_in_any_form() -> None:
    sources = {
        "import vhpc.web.app": "vhpc.web.app",
        "from vhpc.api import ClusterAPI": "vhpc.api",
        "def f():\n    from vhpc import control": "vhpc.control",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vhpc.server import x":
            "vhpc.server",
        "from ..models import Status": "vhpc.models",
        "import importlib\nimportlib.import_module('vhpc.cli.main')": "vhpc.cli.main",
    }
    for source, name in sources.items():
        imports = imported_modules(source, "vhpc.cluster.inventory")
        assert violations("vhpc.cluster.inventory", imports), (source, imports)
        assert any(v.endswith(name) or name in v
                   for v in violations("vhpc.cluster.inventory", imports))
    assert violations("vhpc.cluster.inventory",
                      imported_modules("from vhpc.spec.model import NodeSpec",
                                       "vhpc.cluster.inventory")) == []
