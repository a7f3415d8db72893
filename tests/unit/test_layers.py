"""The architecture's import rules (docs/architecture.md, "Rules"), checked by walking every
module's imports with ``ast``. A failure names the module, the line and the rule."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "copygen"
MAX_LINES = 400

#: Third-party packages each confined to some parts of copygen (module path prefixes).
CONFINED = {
    "torch": ("copygen.engine.model",),
    "transformers": ("copygen.engine.model",),
    "gguf": ("copygen.engine.model",),
    "safetensors": ("copygen.engine.model",),
    "fastapi": ("copygen.api",),
    "starlette": ("copygen.api",),
    "uvicorn": ("copygen.api",),
    "sse_starlette": ("copygen.api",),
    "redis": ("copygen.cache", "copygen.ratelimit"),
    "httpx": ("copygen.backends", "copygen.webhooks"),
    "sqlalchemy": ("copygen.store",),
    "alembic": ("copygen.store",),
    # Traces: the rest of copygen calls copygen.observability.tracing's small functions.
    "opentelemetry": ("copygen.observability",),
}
#: copygen packages a part must not import: the direction api → service → {engine, cache,
#: copywriting} → {domain, errors, resilience}.
FORBIDDEN = {
    "copygen.engine": (
        "copygen.copywriting", "copygen.cache", "copygen.service", "copygen.api",
        "copygen.backends",
    ),
    "copygen.backends": (
        "copygen.engine", "copygen.copywriting", "copygen.cache", "copygen.service",
        "copygen.api",
    ),
    "copygen.generation": (
        "copygen.engine", "copygen.backends", "copygen.copywriting", "copygen.cache",
        "copygen.service", "copygen.api", "copygen.config",
    ),
    "copygen.cache": ("copygen.engine", "copygen.service", "copygen.api"),
    "copygen.copywriting": ("copygen.engine", "copygen.cache", "copygen.service", "copygen.api"),
    "copygen.service": ("copygen.api",),
    "copygen.resilience": (
        "copygen.engine", "copygen.cache", "copygen.copywriting", "copygen.service",
        "copygen.api",
    ),
    "copygen.observability": ("copygen.api",),
    "copygen.store": (
        "copygen.engine", "copygen.backends", "copygen.copywriting", "copygen.cache",
        "copygen.service", "copygen.api",
    ),
}  # fmt: skip
#: Pure parts: the standard library, regex, and each other only.
PURE = ("copygen.domain", "copygen.errors", "copygen.copywriting")
PURE_ALLOWED = ("copygen.domain", "copygen.errors", "copygen.copywriting", "regex")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    path: Path
    line: int
    target: str  # the imported module, dotted
    names: tuple[str, ...]  # names taken from it (from-imports)


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, base: Path) -> Iterator[Import]:
    module = _module_name(path, base)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, path, node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = tuple(alias.name for alias in node.names)
            yield Import(module, path, node.lineno, node.module, names)


def _src_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in _imports(path, SRC)]


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _where(found: Import) -> str:
    return f"{found.path.relative_to(ROOT)}:{found.line} imports {found.target}"


def test_heavy_and_web_libraries_stay_in_their_packages() -> None:
    wrong = [
        _where(i)
        for i in _src_imports()
        if (top := i.target.split(".")[0]) in CONFINED and not _within(i.module, CONFINED[top])
    ]
    assert wrong == []


def test_imports_go_one_way() -> None:
    wrong = [
        _where(i)
        for i in _src_imports()
        for part, banned in FORBIDDEN.items()
        if _within(i.module, (part,)) and _within(i.target, banned)
    ]
    assert wrong == []


def test_domain_errors_and_copywriting_import_only_the_stdlib_regex_and_each_other() -> None:
    wrong = [
        _where(i)
        for i in _src_imports()
        if _within(i.module, PURE)
        and i.target.split(".")[0] not in sys.stdlib_module_names
        and not _within(i.target, PURE_ALLOWED)
    ]
    assert wrong == []


def test_no_module_imports_another_modules_private_names() -> None:
    paths = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    wrong = [
        f"{_where(i)}.{name}"
        for path in paths
        for i in _imports(path, SRC if path.is_relative_to(SRC) else ROOT)
        for name in i.names
        if name.startswith("_") and not name.startswith("__")
    ]
    wrong += [
        _where(i)
        for path in paths
        for i in _imports(path, SRC if path.is_relative_to(SRC) else ROOT)
        if any(p.startswith("_") and not p.startswith("__") for p in i.target.split("."))
    ]
    assert wrong == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines"


def test_every_package_says_what_it_owns() -> None:
    silent = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        if not docstring:
            silent.append(str(init.relative_to(ROOT)))
    assert silent == []


def test_only_the_kv_module_writes_key_and_value_tensors() -> None:
    writers = []
    for path in sorted((PACKAGE / "engine" / "model").glob("*.py")):
        if path.name == "kv.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr in ("keys", "values"):
                        writers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert writers == []


def test_the_rules_see_a_violation() -> None:
    """The walker itself: a module that breaks each rule is caught."""
    tree = ast.parse("import torch\nfrom copygen.cache.l1 import _Entry\n")
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert len(found) == 2
    assert not _within("copygen.service.workflow", CONFINED["torch"])
    assert _within("copygen.engine.model.kv", CONFINED["torch"])
    assert _within("copygen.cache.l1", FORBIDDEN["copygen.engine"])


#: What the copy workflow holds for its own use; routes, middleware and metrics reach these
#: through the runtime (api/deps.py), never through the workflow.
WORKFLOW_PARTS = ("cache", "generators", "book", "rounds", "engine", "routes")
#: Where a name bound to the workflow is called (local names, parameters, attributes).
WORKFLOW_NAMES = ("workflow", "copywriter", "writer")


def _reaches_through_workflow(tree: ast.AST) -> list[int]:
    """Lines where ``<workflow>.<part>`` is read: a route or metric fetching the cache, the
    generators or the store from the copy workflow instead of from the runtime."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in WORKFLOW_PARTS:
            continue
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        if name in WORKFLOW_NAMES:
            lines.append(node.lineno)
    return lines


def test_no_route_middleware_or_metric_reaches_through_the_workflow() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}"
        for part in ("api", "observability")
        for path in sorted((PACKAGE / part).rglob("*.py"))
        for line in _reaches_through_workflow(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert wrong == []


def test_the_reach_through_rule_sees_a_violation() -> None:
    tree = ast.parse("runtime.workflow.cache.stats()\ncopywriter.book.voice()\nruntime.cache\n")
    assert _reaches_through_workflow(tree) == [1, 2]


def test_the_api_imports_no_store_types() -> None:
    wrong = [
        _where(i)
        for i in _src_imports()
        if _within(i.module, ("copygen.api",)) and _within(i.target, ("copygen.store",))
    ]
    assert wrong == []


#: Modules no test imports, because they hold no behaviour of their own: the ``python -m
#: copygen`` shim (copygen.cli is tested) and Alembic's scripts, which Alembic loads by path
#: (tests/unit/store/test_migrations.py checks them as files). A prefix covers what is in it.
DATA_ONLY = (
    "copygen.__main__",
    "copygen.store.migrations.env",
    "copygen.store.migrations.versions",
)


def _tested_modules() -> set[str]:
    """Every module some test file imports: ``import X``, ``from X import y`` (X and X.y)."""
    tested: set[str] = set()
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for found in _imports(path, ROOT):
            tested.add(found.target)
            tested.update(f"{found.target}.{name}" for name in found.names)
    return tested


def _untested(modules: dict[str, Path], tested: set[str]) -> list[str]:
    """Modules no test imports; a package counts as imported with any module inside it."""
    return [
        name
        for name, path in sorted(modules.items())
        if not _within(name, DATA_ONLY)
        and not any(
            target == name or (path.name == "__init__.py" and target.startswith(name + "."))
            for target in tested
        )
    ]


def test_every_module_is_imported_by_a_test() -> None:
    """Tests mirror the source tree: a module no test imports is a module nothing checks."""
    modules = {_module_name(path, SRC): path for path in PACKAGE.rglob("*.py")}
    untested = _untested(modules, _tested_modules())
    assert not untested, "no test file imports " + ", ".join(untested)


def test_the_test_coverage_rule_sees_an_untested_module() -> None:
    modules = {
        "copygen.cache": PACKAGE / "cache" / "__init__.py",
        "copygen.cache.l1": PACKAGE / "cache" / "l1.py",
        "copygen.cache.l2": PACKAGE / "cache" / "l2.py",
        "copygen.__main__": PACKAGE / "__main__.py",
    }
    assert _untested(modules, {"copygen.cache.l1"}) == ["copygen.cache.l2"]
    assert _untested(modules, set()) == ["copygen.cache", "copygen.cache.l1", "copygen.cache.l2"]
