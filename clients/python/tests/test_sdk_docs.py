"""docs/sdk.md keeps up with the SDK: its example runs as written against a real serve (its webhook
handler fed the real delivery), its reference names every method, and the SDK stays contract-only."""

import ast
import inspect
import re
import tomllib
from pathlib import Path

import pytest

import emrtasks_client as sdk

SDK_ROOT = Path(__file__).resolve().parents[1]
DOC = SDK_ROOT.parents[1] / "docs" / "sdk.md"


def _doc() -> str:
    if not DOC.exists():
        pytest.skip("docs/sdk.md is not beside this copy of the SDK")
    return DOC.read_text()


def _python_block(after_heading: str) -> str:
    section = _doc().split(f"## {after_heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.e2e
def test_the_example_runs_as_written_and_verifies_the_real_webhook(
    hook_tenant, receiver, monkeypatch, capsys
):
    with sdk.Client(hook_tenant.url, hook_tenant.client_id, hook_tenant.client_secret) as client:
        endpoint = client.register_webhook(receiver.url)
        try:
            assert endpoint.secret is not None
            for name, value in {
                "EMRTASKS_URL": hook_tenant.url,
                "EMRTASKS_CLIENT_ID": hook_tenant.client_id,
                "EMRTASKS_CLIENT_SECRET": hook_tenant.client_secret,
                "EMRTASKS_ACCESS_TOKEN": hook_tenant.access_token,
                "EMRTASKS_WEBHOOK_SECRET": endpoint.secret,
            }.items():
                monkeypatch.setenv(name, value)
            code = _python_block("Example")
            assert len([line for line in code.splitlines() if line.strip()]) <= 11
            namespace: dict[str, object] = {}
            exec(compile(code, str(DOC), "exec"), namespace)
            task_id = namespace["accepted"].task_id  # type: ignore[attr-defined]
            delivery = receiver.wait_for_task(task_id)
            namespace["on_webhook"](delivery.body, delivery.headers)  # type: ignore[operator]
        finally:
            client.delete_webhook(endpoint.id)
    printed = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"created emrtask_\S+", printed[0])
    assert printed[1] == f"task.created {task_id}"


def test_the_testing_example_runs_as_written():
    exec(compile(_python_block("Testing your code"), str(DOC), "exec"), {})


def _public_methods(kind: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(kind, inspect.isfunction) if not name.startswith("_")}


def test_the_reference_names_every_method_and_both_clients_have_the_same():
    doc = _doc()
    sync, both = _public_methods(sdk.Client), _public_methods(sdk.AsyncClient)
    assert sync - {"close"} == both - {"aclose"}
    for name in sync - {"close"}:
        assert f"`{name}(" in doc, name
    for name in sdk.__all__:
        if name[0].isupper():
            assert re.search(rf"\b{name}\b", doc), name


def test_the_exception_tree_in_the_doc_is_the_code():
    tree = _doc().split("## Exceptions", 1)[1]
    for name in [n for n in sdk.__all__ if n[0].isupper()]:
        kind = getattr(sdk, name)
        if isinstance(kind, type) and issubclass(kind, sdk.EmrTasksError) and kind is not sdk.EmrTasksError:
            parent = kind.__mro__[1].__name__
            assert name in tree and parent in tree, name
    assert sdk.RateLimitError.__mro__[1] is sdk.ApiError
    assert sdk.Timeout.__mro__[1] is sdk.EmrTasksError


def test_the_sdk_imports_nothing_of_the_service_and_depends_on_httpx_and_standardwebhooks_only():
    for path in (SDK_ROOT / "src" / "emrtasks_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(n == "emrtasks" or n.startswith("emrtasks.") for n in names), path
    project = tomllib.loads((SDK_ROOT / "pyproject.toml").read_text())["project"]
    assert [re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]] == ["httpx", "standardwebhooks"]
