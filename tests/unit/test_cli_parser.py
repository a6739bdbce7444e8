"""The command line's parser: which commands may make a new database, and that every command and
option explains itself, with its default."""

import argparse

from emrtasks import cli
from emrtasks.cli import common

CREATORS = {"serve", "worker", "db upgrade", "demo"}


def commands() -> dict[str, argparse.ArgumentParser]:
    return dict(common.leaves(cli.parser()))


def every_parser(root: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(root.prog, root)]
    for action in root._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found.extend(every_parser(command))
    return found


def test_only_serve_worker_db_upgrade_and_demo_may_make_a_new_database():
    found = commands()
    assert {"clients create", "keys list", "audit list", "apps set"} <= set(found)
    may_create = {path for path, command in found.items() if command.get_default("creates_database")}
    assert may_create == CREATORS
    assert all(command.get_default("run") for command in found.values())


def test_every_command_lists_a_help_line_and_describes_itself():
    for name, command in every_parser(cli.parser()):
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                listed = {choice.dest: choice.help for choice in action._choices_actions}
                assert set(listed) == set(action.choices), name
                assert all(listed.values()), f"{name}: a command without help: {listed}"
        assert command.description, f"{name} has no description on its --help page"


def test_every_option_and_argument_has_help_and_shows_its_default():
    for name, command in every_parser(cli.parser()):
        formatter = command._get_formatter()
        for action in command._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            shown = formatter._get_help_string(action) or ""
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings and action.default not in (None, False):
                assert f"default: {action.default}" in shown or "default" in action.help, (name, shown)


def test_help_pages_show_defaults():
    def page(path: str) -> str:
        return " ".join(commands()[path].format_help().split())

    assert "(default: 8000)" in page("serve")
    assert "(default: 10000)" in page("audit list")
    assert "(default: RS384)" in page("keys create")
    assert "(default: EMRTASKS_PUBLIC_URL" in page("demo")
