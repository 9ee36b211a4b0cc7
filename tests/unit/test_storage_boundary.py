"""Only chalicelib/storage/ speaks DynamoDB: these core modules hold records from the storage modules
(storage.clients.Client, storage.grants.Grant, storage.codes.Code, storage.sessions.Session, ...),
never a pynamodb model. Imports under `if TYPE_CHECKING:` are type hints only and allowed."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Every module outside chalicelib/storage/ that ships or operates the IdP (issue 10: "no module
#: outside storage/ imports pynamodb").
CORE_MODULES = sorted(
    str(path.relative_to(ROOT)) for path in [*(ROOT / "chalicelib").rglob("*.py"), *(ROOT / "tools").glob("*.py"),
                                             ROOT / "app.py"]
    if "storage" not in path.relative_to(ROOT).parts)


def _runtime_imports(tree: ast.AST) -> list[str]:
    found = []

    def visit(node, type_checking=False):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_checking)
            return
        if not type_checking and isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif not type_checking and isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.extend([module] + [f"{module}.{alias.name}" for alias in node.names])
        for child in ast.iter_child_nodes(node):
            visit(child, type_checking)

    visit(tree)
    return found


@pytest.mark.parametrize("path", CORE_MODULES)
def test_core_module_imports_neither_pynamodb_nor_the_models(path):
    imports = _runtime_imports(ast.parse((ROOT / path).read_text()))
    assert [name for name in imports if name.split(".")[0] == "pynamodb" or "storage.models" in name] == []
