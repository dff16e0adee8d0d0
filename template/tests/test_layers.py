"""The package's layers: every import points down (docs/layout.md, "Layers").

Top to bottom: the commands (entry points) -> orchestration (the search) -> training |
evaluation | inference -> tracking -> tasks -> models -> data -> the foundation (errors,
settings, config). A module may import its own group and any layer below its own; nothing
imports a command, and the groups of one layer (training, evaluation, inference) do not import
each other. Every import counts, also one inside a
function: it is a dependency all the same, only a later one.

A new module belongs to the group whose name its dotted path starts with (``training/ema.py`` is
``training``); a new top-level module or package must be added to ``LAYERS`` below, which makes
its place a decision. Read with ``ast``: nothing is imported, so the test takes milliseconds.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Top to bottom: (layer, its groups). A group is one or more module paths (dotted, relative to
# the package; a path names the module and everything under it, and the longest one wins).
LAYERS: list[tuple[str, list[tuple[str, ...]]]] = [
    (
        "entry point",
        [
            ("train",),
            ("evaluate",),
            ("predict",),
            ("export",),
            ("tune",),
            ("data.prepare",),
            ("data.validate",),
            ("tracking.resend",),
            ("consolidate",),
            ("serve",),
            ("monitor",),
            ("loadtest",),
            ("routine",),
            ("cv",),
        ],
    ),
    # What runs the layers below as a whole: the search trains trial after trial; the
    # cross-validation trains fold after fold and tests the folds' scores (evaluation's tests).
    ("orchestration", [("training.tuning", "training.study"), ("training.crossval",)]),
    # Training a model, measuring one, and delivering one (batch predictions, export, the HTTP
    # service and its monitoring): three things done with a model, none built on another.
    (
        "training | evaluation | delivery",
        [
            ("training",),
            ("evaluation",),
            ("batch", "image_batch", "text_batch", "exporting", "serving"),
        ],
    ),
    # A checkpoint rebuilt as a model that answers: what evaluate, predict and export serve, and
    # what a distilled run learns from (its teacher, training/distillation.py).
    ("inference", [("inference",)]),
    ("tracking", [("tracking",)]),
    ("tasks", [("tasks",)]),
    ("models", [("models",)]),
    ("data", [("data",)]),
    ("foundation", [("errors", "masking", "settings", "config", "__init__")]),
]


def package_dir(root: Path) -> Path:
    """``src/<package>``: the one folder under ``src/`` with an ``__init__.py``."""
    (package,) = [p for p in (root / "src").iterdir() if (p / "__init__.py").is_file()]
    return package


def module_name(path: Path, package: Path) -> str:
    """``data/prepare.py`` -> ``data.prepare``; ``data/__init__.py`` -> ``data``; the package's
    own ``__init__.py`` -> ``__init__``."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def place(module: str) -> tuple[int, str, tuple[str, ...]] | None:
    """(layer index, layer name, group) of ``module``: the group with the longest matching path."""
    best = None
    for index, (layer, groups) in enumerate(LAYERS):
        for group in groups:
            for prefix in group:
                matches = module == prefix or module.startswith(prefix + ".")
                if matches and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), index, layer, group)
    return None if best is None else best[1:]


def imported_modules(tree: ast.Module, module: str, is_package: bool, names: set[str], top: str):
    """(line, module) for every import of the package's own modules in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    yield node.lineno, alias.name.removeprefix(top).lstrip(".") or "__init__"
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package, up ``level - 1`` more
                here = module.split(".") if module != "__init__" else []
                base = here if is_package else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == top or node.module.startswith(top + ".")):
                target = node.module.removeprefix(top).lstrip(".")
            else:
                continue  # another library
            for alias in node.names:  # `from . import settings` imports the module settings
                sub = f"{target}.{alias.name}" if target else alias.name
                yield node.lineno, sub if sub in names else (target or "__init__")


def violations(root: Path) -> list[str]:
    """Every import that points up or sideways, and every module without a layer."""
    package = package_dir(root)
    files = sorted(package.rglob("*.py"))
    names = {module_name(f, package) for f in files}
    found = []
    for file in files:
        module = module_name(file, package)
        where = file.relative_to(root).as_posix()
        own = place(module)
        if own is None:
            found.append(f"{where}: {module} has no layer: add it to LAYERS (tests/test_layers.py)")
            continue
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        is_package = file.name == "__init__.py"
        imports = set(imported_modules(tree, module, is_package, names, package.name))
        for line, target in sorted(imports):
            other = place(target)
            if other is None or other[2] == own[2] or other[0] > own[0]:
                continue  # no layer (reported once, as a file), its own group, or down
            if other[0] == 0:
                why = "nothing imports a command"
            elif other[0] < own[0]:
                why = "it points up"
            else:
                why = "the groups of one layer are independent"
            found.append(
                f"{where}:{line}: {module} ({own[1]}) imports {target} ({other[1]}): {why}"
            )
    return found


def test_every_import_points_down_the_layers():
    found = violations(ROOT)
    assert not found, "imports against the layers (docs/layout.md):\n" + "\n".join(found)


def test_the_check_names_each_import_against_the_layers(tmp_path):
    # A package that breaks each rule once: the check must name every one, with file and line.
    package = tmp_path / "src" / "pkg"
    for folder in ("training", "evaluation", "data"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "train.py").write_text("from .training import loop\n")
    (package / "evaluate.py").write_text("from .train import main\n")  # a command
    (package / "errors.py").write_text("def fail():\n    from .data import load\n")  # up
    (package / "training" / "loop.py").write_text("from ..evaluation import metrics\n")
    (package / "evaluation" / "metrics.py").write_text("from .. import errors\n")
    (package / "data" / "load.py").write_text("from . import other\nfrom ..errors import fail\n")
    (package / "data" / "other.py").write_text("import pkg.errors\n")
    (package / "unplaced.py").write_text("")
    found = violations(tmp_path)
    assert found == [
        "src/pkg/errors.py:2: errors (foundation) imports data.load (data): it points up",
        "src/pkg/evaluate.py:1: evaluate (entry point) imports train (entry point): "
        "nothing imports a command",
        "src/pkg/training/loop.py:1: training.loop (training | evaluation | delivery) imports "
        "evaluation.metrics (training | evaluation | delivery): the groups of one layer are "
        "independent",
        "src/pkg/unplaced.py: unplaced has no layer: add it to LAYERS (tests/test_layers.py)",
    ]
