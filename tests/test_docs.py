"""The docs keep up with the code: every setting in .env.example and the README, with its default."""

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
