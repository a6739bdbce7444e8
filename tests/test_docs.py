"""The docs keep up with the code: every setting in .env.example and the README, with its default, and
every module in the layout of docs/architecture.md."""

import re
from pathlib import Path

from emrtasks.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_env_example_lists_every_setting_with_its_default():
    lines = set((ROOT / ".env.example").read_text().splitlines())
    for name in Settings.model_fields:
        assert f"EMRTASKS_{name.upper()}={_default(name)}" in lines


def test_readme_configuration_table_names_every_setting():
    readme = (ROOT / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`EMRTASKS_{name.upper()}`" in readme


def _layout_sections() -> dict[str, str]:
    """docs/architecture.md's layout block: each entry (`storage/`, `config.py`) with its text."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    sections: dict[str, str] = {}
    key = ""
    for line in block.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            key, _, rest = line.strip().partition(" ")
            sections[key] = rest
        elif key:
            sections[key] += " " + line.strip()
    return sections


def _section_for(path: str, sections: dict[str, str]) -> str:
    """The entry that holds `path`: its own (`config.py`), else its longest folder (`web/link/`)."""
    if path in sections:
        return sections[path]
    folders = [key for key in sections if key.endswith("/") and path.startswith(key)]
    assert folders, f"{path}: no entry for its folder in the layout of docs/architecture.md"
    return sections[max(folders, key=len)]


def _named(word: str, text: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(word)}(?!\w)", text) is not None


def test_the_architecture_layout_names_every_module():
    package = ROOT / "src" / "emrtasks"
    sections = _layout_sections()
    top_level = " ".join(f"{key} {text}" for key, text in sections.items() if not key.endswith("/"))
    for module in sorted(package.rglob("*.py")):
        path = module.relative_to(package).as_posix()
        if module.name == "__init__.py" or "migrations/versions/" in path:
            continue  # a package is named by its folder; revisions are named as a group
        if module.parent == package:
            assert _named(module.name, top_level), f"{path} is not named in docs/architecture.md's layout"
            continue
        word = module.name if module.stem.startswith("__") else module.stem
        text = _section_for(path, sections)
        assert _named(word, text), f"{path} is not named in docs/architecture.md's layout"


def test_the_architecture_layout_names_every_package():
    package = ROOT / "src" / "emrtasks"
    sections = _layout_sections()
    for folder in sorted(p.parent for p in package.rglob("__init__.py") if p.parent != package):
        path = folder.relative_to(package).as_posix() + "/"
        if path in sections:
            continue
        parent = _section_for(path.rstrip("/").rpartition("/")[0] + "/", sections)
        assert _named(folder.name + "/", parent), f"{path} is not named in docs/architecture.md's layout"
