"""The package layout that ARCHITECTURE.md describes: model folders import nothing of cervix_hf outside
themselves, and no module imports a layer below its own."""

import ast
from pathlib import Path

import pytest

from cervix_hf.registry import FAMILIES

PACKAGE = Path(__file__).resolve().parent.parent / "cervix_hf"
# Top to bottom, as in ARCHITECTURE.md: a module may import its own layer and the layers above it.
LAYERS = (
    ("models", ("models",)),
    ("helpers", ("io", "sample_data", "commands")),
    ("data", ("data",)),
    ("registry", ("registry",)),
    ("evaluation", ("evaluation",)),
    ("hub", ("hub",)),
    ("prediction, export", ("prediction", "export")),
    ("app, CLI", ("app", "cli", "predict", "inference", "__main__", "__init__")),
)
LAYER_OF = {name: index for index, (_, names) in enumerate(LAYERS) for name in names}


def top_level_name(path: Path) -> str:
    """The layer name of a module: its first name under cervix_hf; a package's `__main__` is a command."""
    if path.name == "__main__.py":
        return "__main__"
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_modules(path: Path, depth: int = 1) -> set[str]:
    """The cervix_hf modules `path` imports, as their first `depth` names under cervix_hf (`hub`, `registry`, ...)."""
    package_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                parts = [*base, *(node.module.split(".") if node.module else [])]
            else:
                parts = (node.module or "").split(".")
            if parts[0] != "cervix_hf":
                continue
            names = [[*parts[1:], alias.name] for alias in node.names]
            found.update(".".join(name[:depth]) for name in names)
        elif isinstance(node, ast.Import):
            found.update(
                ".".join(alias.name.split(".")[1 : depth + 1])
                for alias in node.names
                if alias.name.startswith("cervix_hf.")
            )
    return found


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def test_every_module_has_a_layer():
    assert {top_level_name(path) for path in MODULES} <= set(LAYER_OF)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_imports_a_lower_layer(path):
    own = top_level_name(path)
    below = sorted(name for name in imported_modules(path) if LAYER_OF.get(name, -1) > LAYER_OF[own])
    assert not below, f"{path.relative_to(PACKAGE)} ({LAYERS[LAYER_OF[own]][0]}) imports the lower layer(s) {below}"


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.model_type)
def test_a_model_folder_imports_only_itself(family):
    package, layer, folder, _ = family.config_class.__module__.split(".")
    assert (package, layer, folder) == ("cervix_hf", "models", family.model_type)  # one stem: folder = model type
    for path in (PACKAGE / "models" / folder).glob("*.py"):
        assert imported_modules(path, depth=2) <= {f"models.{folder}"}, f"{path.name} imports outside its folder"


def test_a_model_s_tests_are_named_after_its_model_type():
    """A test module about one model starts with `test_<model_type>_`, so one glob finds all of a model's tests."""
    model_words = ("colpo", "detect", "prepost", "fusion", "tiling", "quality_gate", "intel", "binary", "iarc")
    prefixes = tuple(f"test_{family.model_type}_" for family in FAMILIES)
    tests = Path(__file__).resolve().parent
    for path in tests.glob("test_*.py"):
        if any(word in path.stem for word in model_words):
            assert path.name.startswith(prefixes), f"{path.name} is about one model: name it test_<model_type>_*.py"
    for prefix in prefixes:
        assert len(list(tests.glob(f"{prefix}*.py"))) >= 3, f"no tests named {prefix}*.py"
