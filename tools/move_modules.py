"""Move zootool's flat modules into stage packages and rewrite every reference to them.

Run from the repository root: ``python tools/move_modules.py``. It

1. ``git mv``s each module of ``MOVES`` (old dotted name -> new dotted name) and writes an
   ``__init__.py`` with a one-line docstring into each new package;
2. rewrites imports in ``src/``, ``tests/`` and ``bench/``: relative imports inside the package
   become absolute (so they survive the move), ``from pkg import module`` follows the module,
   and dotted strings (``mock.patch`` targets, ``python -m`` entry points, ``module:function``
   references) are renamed by their longest moved prefix;
3. rewrites the console-script entry point in ``pyproject.toml``.

It prints what it changed; run the tests afterwards.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = "zootool"

MOVES = {
    # cli/: typer commands, what they print, and the orchestration of each command
    "cli": "cli.app",
    "cli_output": "cli.output",
    "progress": "cli.progress",
    "list_view": "cli.list_view",
    "batch_view": "cli.batch_view",
    "render": "cli.render",
    "batch_cli": "cli.batch",
    "gate_cli": "cli.gate",
    "publish_cli": "cli.publish",
    "index_cli": "cli.index",
    "new_cli": "cli.new",
    "list_cache": "cli.list_cache",
    "list_rows": "cli.list_rows",
    "lazy_coercion": "cli.lazy_coercion",
    # config/: recipe and zoo-data schemas, the registry of recipes, scaffolding
    "schema_base": "config.schema_base",
    "recipe": "config.recipe",
    "zoo_data": "config.zoo_data",
    "registry": "config.registry",
    "scaffold": "config.scaffold",
    "license_match": "config.license_match",
    "zoo_root": "config.zoo_root",
    # plan/: the cascade and the predictions made from a plan
    "plan": "plan.resolve",
    "rebuild_plan": "plan.recorded",
    "estimate": "plan.estimate",
    "footprint": "plan.footprint",
    "duration": "plan.duration",
    # fetch/: Hub downloads and synthetic checkpoints
    "fetch": "fetch.hub",
    "upstream": "fetch.upstream",
    "checkpoint": "fetch.checkpoint",
    "synthetic": "fetch.synthetic",
    "synthetic.generate": "fetch.synthetic.generate",
    "synthetic.safetensors_stream": "fetch.synthetic.safetensors_stream",
    "synthetic.tokenizer": "fetch.synthetic.tokenizer",
    "synthetic.weights": "fetch.synthetic.weights",
    # arch/<family>/: schema, layers, model, weights
    "arch.lfm2_moe": "arch.lfm2_moe.schema",
    "arch.lfm2_moe_layers": "arch.lfm2_moe.layers",
    "arch.lfm2_moe_model": "arch.lfm2_moe.model",
    "arch.lfm2_moe_weights": "arch.lfm2_moe.weights",
    "arch.llama": "arch.llama.schema",
    "arch.llama_layers": "arch.llama.layers",
    "arch.llama_model": "arch.llama.model",
    "arch.llama_weights": "arch.llama.weights",
    # backends/<backend>/: export, quantization, runtime
    "backends.coreai": "backends.coreai.export",
    "backends.coreai_consume": "backends.coreai.consume",
    "backends.coreai_quant": "backends.coreai.quant",
    "backends.coreai_runtime": "backends.coreai.runtime",
    "backends.coreai_save": "backends.coreai.save",
    "backends.coremltools": "backends.coremltools.export",
    "backends.coremltools_compress": "backends.coremltools.compress",
    "backends.coremltools_names": "backends.coremltools.names",
    "backends.coremltools_runtime": "backends.coremltools.runtime",
    "backends.coremltools_stateful": "backends.coremltools.stateful",
    # build/: the pipeline, its export child process, and zoo-wide runs
    "builder": "build.pipeline",
    "export": "build.export",
    "child": "build.child",
    "_export_child": "build._export_child",
    "memory": "build.memory",
    "quiet": "build.quiet",
    "resources": "build.resources",
    "parallel": "build.parallel",
    "batch": "build.batch",
    "jobs": "build.jobs",
    "selection": "build.selection",
    "executor_local": "build.executor_local",
    "executor_ray": "build.executor_ray",
    "transfer": "build.transfer",
    "job_models": "build.job_models",
    "row_publish": "build.row_publish",
    "cluster_address": "build.cluster_address",
    "reach": "fetch.reach",
    # gate/: oracle, margin rule, the engine driver
    "gate": "gate.run",
    "gate_math": "gate.margin",
    "oracle": "gate.oracle",
    "engine": "gate.engine",
    "generate": "gate.generate",
    # bundle/: layout, the files beside the model, card, manifest, verify
    "bundle": "bundle.layout",
    "package": "bundle.package",
    "app_metadata": "bundle.app_metadata",
    "contract": "bundle.contract",
    "card": "bundle.card",
    "manifest": "bundle.manifest",
    "verify": "bundle.verify",
    # publish/: the one HfApi adapter and the offline selection of files
    "publisher": "publish.hub",
    "publish_plan": "publish.selection",
    "publish_errors": "publish.errors",
    # catalog/: records, the catalog model, markdown, status
    "records": "catalog.records",
    "catalog": "catalog.model",
    "index": "catalog.index",
    "index_md": "catalog.markdown",
    "status": "catalog.status",
}
PACKAGES = {
    "cli": "The ``zoo`` command: typer commands, what they print, and the orchestration of each command.",
    "config": "Recipes and zoo data: schemas, loading, the recipe registry, scaffolding new recipes.",
    "plan": "Recipe + target + zoo data -> BuildPlan: the cascade, and the size, memory and time predictions.",
    "fetch": "Checkpoints: pinned Hub downloads, upstream metadata, synthetic checkpoints.",
    "arch.lfm2_moe": "LFM2-MoE: schema, export-friendly layers, decode graph, weight loading.",
    "arch.llama": "Llama-style dense decoders (Llama, Qwen3, Mistral): schema, layers, decode graph, weights.",
    "backends.coreai": "The Core AI backend: export to .aimodel, quantization, the Linux CPU runtime.",
    "backends.coremltools": "The Core ML backend: export to .mlpackage, compression, runtime.",
    "build": "``zoo build``: the staged pipeline, the export child process, zoo-wide runs and their executors.",
    "gate": "The quality gate: fp32 oracle, margin rule, the engine driver that runs a bundle.",
    "bundle": "The bundle: layout, files beside the model, engine contract, card, manifest, verify.",
    "publish": "Publishing to the Hugging Face Hub: the one HfApi adapter, file selection, error table.",
    "catalog": "The catalog: build records, the catalog model, markdown and index files, status.",
}


def full(name: str) -> str:
    return f"{PKG}.{name}"


OLD_TO_NEW = {full(old): full(new) for old, new in MOVES.items()}


def module_path(name: str, package: bool = False) -> Path:
    parts = name.split(".")
    return SRC.joinpath(*parts, "__init__.py") if package else SRC.joinpath(*parts[:-1], parts[-1] + ".py")


def renamed(name: str) -> str:
    """A dotted name after the move, by its longest moved prefix (``zootool.gate._runnable`` too)."""
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        head = ".".join(parts[:cut])
        if head in OLD_TO_NEW:
            return ".".join([OLD_TO_NEW[head], *parts[cut:]])
    return name


def known_modules() -> set[str]:
    names = set()
    for path in (SRC / PKG).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def absolute_base(current: str, is_package: bool, level: int, module: str | None) -> str:
    parts = current.split(".")
    package = parts if is_package else parts[:-1]
    package = package[: len(package) - (level - 1)]
    return ".".join(package + ([module] if module else []))


def rewrite_imports(path: Path, current: str | None, modules: set[str]) -> str:
    """The file's text with every zootool import (relative or absolute) pointing at the new places."""
    text = path.read_text()
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            new = _from_import(node, current, path.name == "__init__.py", modules)
        elif isinstance(node, ast.Import):
            new = _plain_import(node)
        else:
            continue
        if new is not None:
            edits.append((node, new))
    for node, new in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        start = _offset(lines, node.lineno, node.col_offset)
        end = _offset(lines, node.end_lineno, node.end_col_offset)
        text = text[:start] + new + text[end:]
        lines = text.splitlines(keepends=True)
    return text


def _offset(lines: list[str], lineno: int, col: int) -> int:
    """A character offset from ast's (line, UTF-8 byte column)."""
    return sum(len(line) for line in lines[: lineno - 1]) + len(lines[lineno - 1].encode()[:col].decode())


def _plain_import(node: ast.Import) -> str | None:
    if not any(alias.name.startswith(PKG + ".") for alias in node.names):
        return None
    if len(node.names) != 1:
        raise SystemExit(f"line {node.lineno}: split the multi-name import first")
    alias = node.names[0]
    new = renamed(alias.name)
    if new == alias.name:
        return None
    return f"import {new}" + (f" as {alias.asname}" if alias.asname else "")


def _from_import(node: ast.ImportFrom, current: str | None, is_package: bool, modules: set[str]) -> str | None:
    if node.level:
        if current is None:
            return None
        base = absolute_base(current, is_package, node.level, node.module)
    else:
        base = node.module or ""
        if base != PKG and not base.startswith(PKG + "."):
            return None
    groups: dict[str, list[str]] = {}
    for alias in node.names:
        target = f"{base}.{alias.name}"
        if target in modules and target in OLD_TO_NEW:
            parent, _, leaf = OLD_TO_NEW[target].rpartition(".")
            name = leaf if leaf == alias.name and not alias.asname else f"{leaf} as {alias.asname or alias.name}"
            groups.setdefault(parent, []).append(name)
        else:
            groups.setdefault(renamed(base), []).append(alias.name + (f" as {alias.asname}" if alias.asname else ""))
    indent = " " * node.col_offset
    return ("\n" + indent).join(_wrapped(module, names, indent) for module, names in groups.items())


def _wrapped(module: str, names: list[str], indent: str, width: int = 116) -> str:
    """``from module import names`` on one line, or parenthesised over several when too long."""
    line = f"from {module} import {', '.join(names)}"
    if len(indent + line) <= width:
        return line
    rows, row = [], indent + "    "
    for name in names:
        if len(row) + len(name) + 2 > width and row.strip():
            rows.append(row.rstrip())
            row = indent + "    "
        row += name + ", "
    rows.append(row.rstrip())
    return f"from {module} import (\n" + "\n".join(rows) + f"\n{indent})"


# Strings that look like module names but are asset metadata keys.
NOT_MODULES = frozenset({"zootool.recipe"})
STRING = re.compile(r"""(?P<q>["'])(?P<name>zootool(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?P<rest>(?::[A-Za-z_][A-Za-z0-9_]*)?)(?P=q)""")
DASH_M = re.compile(r"(?P<pre>-m\s+)(?P<name>zootool(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


DOC_NAME = re.compile(r"``(?P<name>zootool(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _string(match: re.Match) -> str:
    name = match["name"] if match["name"] in NOT_MODULES else renamed(match["name"])
    return f"{match['q']}{name}{match['rest']}{match['q']}"


def rewrite_strings(text: str) -> str:
    text = STRING.sub(_string, text)
    text = DOC_NAME.sub(lambda m: "``" + renamed(m["name"]), text)
    return DASH_M.sub(lambda m: m["pre"] + renamed(m["name"]), text)


def relative_form(text: str, current: str, is_package: bool) -> str:
    """Inside the package, ``from zootool.a.b import x`` back to ``from ..a.b import x`` from ``current``."""
    here = current.split(".") if is_package else current.split(".")[:-1]

    def relative(match: re.Match) -> str:
        target = match["module"].split(".")
        common = 0
        while common < min(len(here), len(target)) and here[common] == target[common]:
            common += 1
        if common == 0:
            return match[0]
        dots = "." * (len(here) - common + 1)
        return f"{match['indent']}from {dots}{'.'.join(target[common:])} import"

    pattern = re.compile(r"^(?P<indent>[ \t]*)from (?P<module>zootool(?:\.[A-Za-z_][A-Za-z0-9_]*)*) import", re.M)
    return pattern.sub(relative, text)


def sort_relative_imports(text: str) -> str:
    """Keep each run of module-level relative imports in module order, as the code base does."""
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    runs, run = [], []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            run.append(node)
            continue
        if len(run) > 1:
            runs.append(run)
        run = []
    if len(run) > 1:
        runs.append(run)
    for run in reversed(runs):
        start = sum(len(line) for line in lines[: run[0].lineno - 1])
        end = sum(len(line) for line in lines[: run[-1].end_lineno])
        pieces = ["".join(lines[n.lineno - 1:n.end_lineno]) for n in run]
        text = text[:start] + "".join(sorted(pieces, key=_import_order)) + text[end:]
        lines = text.splitlines(keepends=True)
    return text


def _import_order(line: str) -> tuple[int, str]:
    module = line.split()[1]
    dots = len(module) - len(module.lstrip("."))
    return -dots, module.lstrip(".")


# Text the rewriting cannot see: code inside strings and paths counted from a module's file.
FIXUPS = (
    ("tests/test_cli.py", "from zootool.cli import main", "from zootool.cli.app import main"),
    ("tests/test_resources.py", "from zootool.cli import main", "from zootool.cli.app import main"),
    ("src/zootool/build/child.py", "Path(__file__).resolve().parents[1]", "Path(__file__).resolve().parents[2]"),
    ("src/zootool/cli/list_cache.py", "Path(__file__).parent.rglob", "Path(__file__).parents[1].rglob"),
    ("tests/test_oracle.py", "Path(oracle.__file__).resolve().parents[1]", "Path(oracle.__file__).resolve().parents[2]"),
    ('tests/test_backend_coreai.py', 'from zootool.backends import coreai\\nfrom zootool.errors', 'from zootool.backends.coreai import export as coreai\\nfrom zootool.errors'),
    ('tests/test_list_cache.py', 'from zootool.cli import main', 'from zootool.cli.app import main'),
    ('tests/test_oracle.py', 'from zootool.oracle import streaming_logits', 'from zootool.gate.oracle import streaming_logits'),
    ('bench/flagship_scale.py', 'from zootool.registry import get; from zootool.zoo_data import Zoo;', 'from zootool.config.registry import get; from zootool.config.zoo_data import Zoo;'),
    ('bench/flagship_scale.py', 'from zootool.synthetic import generate_checkpoint;', 'from zootool.fetch.synthetic import generate_checkpoint;'),
    ('bench/cli_startup.py', 'from zootool.cli import ZooGroup', 'from zootool.cli.app import ZooGroup'),
    ("tests/test_synthetic.py", "\nfrom zootool.synthetic import generate_checkpoint", "\nfrom zootool.fetch.synthetic import generate_checkpoint"),
    ("tests/test_backend_coreai.py", "import sys, zootool.backends.coreai;", "import sys, zootool.backends.coreai.export;"),
    ("tests/test_list_cache.py", "'typer._adapters', 'zootool.recipe')", "'typer._adapters', 'zootool.config.recipe')"),
    ("tests/test_import_cycles.py", 'f"{PACKAGE}.errors" in eager[f"{PACKAGE}.plan"]',
     'f"{PACKAGE}.errors" in eager[f"{PACKAGE}.plan.resolve"]'),
    ("tests/test_import_cycles.py", 'f"{PACKAGE}.gate" in targets', 'f"{PACKAGE}.gate.run" in targets'),
)


def apply_fixups() -> None:
    for rel, old, new in FIXUPS:
        path = ROOT / rel
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"{rel}: expected {old!r}")
        path.write_text(text.replace(old, new))
        print("fixed", rel)


def git(*args: str) -> None:
    subprocess.run(["git", *args], cwd=ROOT, check=True)


def move_files() -> None:
    moved_packages = {"fetch.synthetic"}  # the old package's __init__ moves there
    packages = ({new.rpartition(".")[0] for new in MOVES.values()} | set(PACKAGES)) - moved_packages
    for package in sorted(packages, key=len):
        init = module_path(full(package), package=True)
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text(f'"""{PACKAGES.get(package, package)}"""\n')
            git("add", str(init))
    for old, new in MOVES.items():
        if old.split(".")[0] == "synthetic":
            continue  # the package moves as a whole below
        git("mv", str(module_path(full(old))), str(module_path(full(new))))
    git("mv", str(SRC / PKG / "synthetic"), str(SRC / PKG / "fetch" / "synthetic"))


def current_module(path: Path) -> str | None:
    try:
        parts = list(path.relative_to(SRC).with_suffix("").parts)
    except ValueError:
        return None
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def main() -> int:
    # Resolve relative imports against the old layout first, then move the files.
    old_modules = known_modules()
    targets = [p for d in ("src", "tests", "bench") for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts]
    targets = [p for p in targets if p.resolve() != Path(__file__).resolve()]
    rewritten = {}
    for path in targets:
        text = rewrite_imports(path, current_module(path), old_modules)
        rewritten[path] = rewrite_strings(text)
    move_files()
    for path, text in rewritten.items():
        module = current_module(path)
        dest = module_path(renamed(module), package=path.name == "__init__.py") if module else path
        if module == f"{PKG}.synthetic":
            dest = module_path(full("fetch.synthetic"), package=True)
        if module:
            new_module = renamed(module) if module != f"{PKG}.synthetic" else full("fetch.synthetic")
            text = sort_relative_imports(relative_form(text, new_module, path.name == "__init__.py"))
        if dest.read_text() != text:
            dest.write_text(text)
            print("rewrote", dest.relative_to(ROOT))
    apply_fixups()
    pyproject = ROOT / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('zoo = "zootool.cli:main"', 'zoo = "zootool.cli.app:main"'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
