"""A static check of the handler files an export ships: every import is of the standard library (of the
running Python) or of a module the export carries in code/lib.

Only a model with word features carries jieba and data/posseg.py; in an export without them, imports
of those inside functions are allowed (that code runs only for word features).
"""
import ast
import sys
from pathlib import Path
from typing import List, Set, Tuple

import albert_ner
from albert_ner.infer.export import WORD_FEATURE_MODULES

SOURCE = Path(albert_ner.__file__).parent
OPTIONAL = {"jieba"} | {"albert_ner." + m[:-len(".py")].replace("/", ".") for m in WORD_FEATURE_MODULES}


def _module_file(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _lazy_imports(tree: ast.AST) -> Set[int]:
    """ids of the import statements inside function bodies."""
    lazy = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lazy.update(id(n) for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom)))
    return lazy


def imported_modules(node: ast.AST) -> List[str]:
    """The modules an import statement loads (for `from M import x`: M, and M.x where x is a package module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    names = [node.module]
    if node.module.split(".")[0] == "albert_ner":
        names += [f"{node.module}.{a.name}" for a in node.names
                  if _module_file(SOURCE.parent, f"{node.module}.{a.name}")]
    return names


def check_imports(code: Path) -> Tuple[List[str], int]:
    """(problems, number of files scanned) for code/inference.py and code/lib/albert_ner/**/*.py."""
    lib = code / "lib"
    word_features = (lib / "jieba").is_dir()
    files = [code / "inference.py"] + sorted((lib / "albert_ner").rglob("*.py"))
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        lazy = _lazy_imports(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"{path}:{node.lineno}: relative import")
                continue
            for name in imported_modules(node):
                top = name.split(".")[0]
                if top == "__future__" or (top in sys.stdlib_module_names and top != "albert_ner"):
                    continue
                if _module_file(lib, name):
                    continue
                if id(node) in lazy and not word_features and (name in OPTIONAL or top in OPTIONAL):
                    continue
                problems.append(f"{path.relative_to(code)}:{node.lineno}: imports {name}, which is neither in the "
                                "standard library nor shipped in code/lib")
    return problems, len(files)
