"""The architecture map (docs/architecture.md) is drawn from the code: every module of the package
is named in it, so a module added without a line there fails here."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "include" / "ragloop"
MAP = ROOT / "docs" / "architecture.md"


def map_names() -> set[str]:
    # The map names a module by its file name ("files.py (…)"), or by its bare name in a package's
    # list ("runner (…), services (…)"), and a package by its folder ("cluster/").
    text = MAP.read_text(encoding="utf-8")
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
    return {f"{word}.py" for word in words} | set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*/", text))


def test_every_module_is_in_the_architecture_map():
    named = map_names()
    missing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and path.name not in named
    )
    packages = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.iterdir()
        if path.is_dir() and (path / "__init__.py").exists() and f"{path.name}/" not in named
    )
    assert not missing and not packages, f"not in {MAP.relative_to(ROOT)}: modules {missing}, packages {packages}"
