"""The dependency rule (README, 'Architecture'), checked on the source with ``ast``.

Every ``.py`` file under ``entropy/``, ``models/``, ``codec/``, ``tools/`` and
``training/`` is parsed and every import in it - module level or inside a function,
absolute or relative, plus ``importlib.import_module("...")`` / ``__import__("...")``
with a constant name - is mapped to the layer it reaches (folders map to import names
through ``package-dir`` in ``pyproject.toml``):

    entropy  (codec.entropy)   imports nothing of ours
    models   (codec.models)    codec.entropy
    codec    (codec, without the sub-packages below)   codec.models, codec.entropy
    tools    (codec.tools)     codec, codec.models, codec.entropy
    training (codec.training)  codec, codec.models, codec.entropy

so nothing outside them imports ``codec.tools`` or ``codec.training``, and those two do
not import each other.  The same rule is written as an import-linter contract in
``pyproject.toml`` (``lint-imports``, for those who have it); this test is what CI runs.
"""
from __future__ import annotations

import ast
import pathlib
import re
from dataclasses import dataclass

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: folder -> import name, as pyproject's package-dir says (checked below)
PACKAGES = {"codec": "codec", "models": "codec.models", "entropy": "codec.entropy",
            "tools": "codec.tools", "training": "codec.training"}
#: layer -> the layers its modules may import (their own included)
ALLOWED = {
    "entropy": ("entropy",),
    "models": ("models", "entropy"),
    "codec": ("codec", "models", "entropy"),
    "tools": ("tools", "codec", "models", "entropy"),
    "training": ("training", "codec", "models", "entropy"),
}
#: layer -> third-party packages it must not import
FORBIDDEN_EXTERNAL = {"entropy": ("compressai", "scipy")}


@dataclass(frozen=True)
class Import:
    path: str  # relative to the root, with forward slashes
    line: int
    text: str  # the source line
    target: str  # absolute dotted module name reached


def _module_name(root: pathlib.Path, path: pathlib.Path) -> tuple[str, bool]:
    """(dotted module name, is a package ``__init__``) of a source file."""
    rel = path.relative_to(root)
    parts = [PACKAGES[rel.parts[0]]] + list(rel.parts[1:])
    is_pkg = parts[-1] == "__init__.py"
    parts = parts[:-1] if is_pkg else parts[:-1] + [parts[-1][:-3]]
    return ".".join(parts), is_pkg


def source_files(root: pathlib.Path):
    for folder in PACKAGES:
        base = root / folder
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def collect_imports(root: pathlib.Path) -> list[Import]:
    files = list(source_files(root))
    known = {_module_name(root, p)[0] for p in files}
    out = []
    for path in files:
        name, is_pkg = _module_name(root, path)
        package = name if is_pkg else name.rpartition(".")[0]
        src = path.read_text()
        lines = src.splitlines()
        rel = path.relative_to(root).as_posix()

        def add(node, target):
            out.append(Import(rel, node.lineno, lines[node.lineno - 1].strip(), target))

        for node in ast.walk(ast.parse(src, filename=rel)):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(node, alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module
                for alias in node.names:  # ``from pkg import sub`` reaches pkg.sub when it is a module
                    sub = f"{mod}.{alias.name}"
                    add(node, sub if sub in known or _is_subpackage(sub) else mod)
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                f = node.func
                fname = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if fname in ("import_module", "__import__") and not node.args[0].value.startswith("."):
                    add(node, node.args[0].value)
    return out


def _is_subpackage(name: str) -> bool:
    return name in PACKAGES.values()


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to; ``None`` for third-party modules and
    ``"bare"`` for our folders imported by their folder names (``import models``)."""
    best = None
    for folder, pkg in PACKAGES.items():
        if (module == pkg or module.startswith(pkg + ".")) and (best is None or len(pkg) > len(PACKAGES[best])):
            best = folder
    if best is None and module.split(".")[0] in PACKAGES and module.split(".")[0] != "codec":
        return "bare"
    return best


def violations(root: pathlib.Path) -> list[str]:
    problems = []
    for imp in collect_imports(root):
        src_layer = imp.path.split("/")[0]
        target = layer_of(imp.target)
        top = imp.target.split(".")[0]
        if target == "bare":
            problems.append(f"{imp.path}:{imp.line}: `{imp.text}` imports {imp.target!r} by its folder name; "
                            f"import it as {PACKAGES[top]}")
        elif target is not None and target not in ALLOWED[src_layer]:
            may = ", ".join(PACKAGES[a] for a in ALLOWED[src_layer] if a != src_layer)
            may = f"may import only {may}" if may else "may import nothing of ours"
            problems.append(f"{imp.path}:{imp.line}: `{imp.text}` imports {imp.target} (layer {target}); "
                            f"{src_layer}/ ({PACKAGES[src_layer]}) {may}")
        elif target is None and top in FORBIDDEN_EXTERNAL.get(src_layer, ()):
            problems.append(f"{imp.path}:{imp.line}: `{imp.text}` imports {top}, which {src_layer}/ must not use")
    return problems


def check_layers(root: pathlib.Path) -> None:
    problems = violations(root)
    if problems:
        raise AssertionError(f"{len(problems)} import(s) break the dependency rule "
                             "(README, 'Architecture'):\n" + "\n".join(problems))


# ----------------------------------------------------------------------------------------
def test_the_code_follows_the_dependency_rule():
    assert len(collect_imports(ROOT)) > 100  # the scan sees the code (a wrong root would pass vacuously)
    check_layers(ROOT)


def test_entropy_does_not_mention_compressai():
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "entropy").rglob("*"))
            if p.is_file() and p.suffix in (".py", ".md") for i, line in enumerate(p.read_text().splitlines(), 1)
            if "compressai" in line.lower()]
    assert not hits, hits


def test_the_checker_catches_violations(tmp_path):
    files = {
        "entropy/__init__.py": "from .rans import encode\nimport numpy as np\n",
        "entropy/rans.py": "from . import tables\n\n\ndef f():\n    from codec.models import registry\n",
        "entropy/tables.py": "import scipy.special\n",
        "models/__init__.py": "",
        "models/x.py": "from codec import entropy\nfrom codec import api\n",
        "codec/__init__.py": "from codec.errors import CodecError\n",
        "codec/api.py": "import codec.models.registry\nif True:\n    import codec.tools.evaluate\n",
        "tools/__init__.py": "",
        "tools/t.py": "from codec import api\nfrom codec.training import loop\n",
        "training/__init__.py": "",
        "training/w.py": "import importlib\nimportlib.import_module('codec.tools.report')\nfrom ..tools import t\n",
        "training/v.py": "import models.registry\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    with pytest.raises(AssertionError) as info:
        check_layers(tmp_path)
    msg = str(info.value)
    want = [
        "entropy/rans.py:5: `from codec.models import registry` imports codec.models (layer models); "
        "entropy/ (codec.entropy) may import nothing of ours",
        "entropy/tables.py:1: `import scipy.special` imports scipy",
        "models/x.py:2: `from codec import api` imports codec.api (layer codec)",
        "codec/api.py:3: `import codec.tools.evaluate` imports codec.tools.evaluate (layer tools)",
        "tools/t.py:2: `from codec.training import loop` imports codec.training (layer training)",
        "training/w.py:2: `importlib.import_module('codec.tools.report')` imports codec.tools.report",
        "training/w.py:3: `from ..tools import t` imports codec.tools.t (layer tools)",
        "training/v.py:1: `import models.registry` imports 'models.registry' by its folder name",
    ]
    for w in want:
        assert w in msg, f"{w!r} not reported in:\n{msg}"
    assert f"{len(want)} import(s) break" in msg and msg.count("\n") == len(want)  # and nothing else
    for ok in ("entropy/__init__.py", "models/x.py:1", "codec/api.py:1", "tools/t.py:1", "codec/__init__.py"):
        assert ok not in msg


def _pyproject() -> dict:
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(text)


def test_package_dir_maps_the_folders():
    assert {v: k for k, v in _pyproject()["tool"]["setuptools"]["package-dir"].items()} == PACKAGES


def test_the_import_linter_contract_states_the_same_rule():
    """pyproject's import-linter contract stays in step with this test: its layers are ours,
    and its ``codec`` layer lists every module of the ``codec/`` folder (it is exhaustive,
    so lint-imports fails on a module that is not listed; so does this test)."""
    cfg = _pyproject()["tool"]["importlinter"]
    assert cfg["root_package"] == "codec"
    (contract,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    assert contract["containers"] == ["codec"] and contract["exhaustive"] is True
    layers = [re.split(r"\s*[|:]\s*", layer.strip()) for layer in contract["layers"]]
    assert layers[0] == ["tools", "training"] and "|" in contract["layers"][0]  # independent of each other
    assert layers[2:] == [["models"], ["entropy"]]
    codec_modules = sorted(p.stem if p.suffix == ".py" else p.name for p in (ROOT / "codec").iterdir()
                           if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists())
    assert sorted(layers[1]) == codec_modules, (
        "pyproject.toml [tool.importlinter] layer 2 must list every module of codec/: "
        f"{' : '.join(codec_modules)}")
