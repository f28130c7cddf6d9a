"""The README's examples for module authors run as they stand, in a pytest process of their
own with only the installed plugin (no conftest of this repository), so the README cannot
drift from the kit. The same run shows what the kit says when it is misused."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
OPENING = "```python\n"

MISUSE = """
import pytest
from dependency_injector import providers

from app.testing import FakeCache


def test_an_override_in_the_body_comes_too_late(credit_container, credit_client, people):
    credit_container.cache.override(providers.Object(FakeCache(down=True)))


@pytest.mark.credit_override(cahce=FakeCache())
def test_a_misspelt_provider(credit_app):
    pass
"""


def readme_example(name: str) -> str:
    """The code block right after the README's `<!-- readme-example: name ... -->` comment."""
    text = README.read_text()
    marker = f"<!-- readme-example: {name} "
    assert text.count(marker) == 1, f"README.md must hold exactly one {marker!r}"
    after = text[text.index(marker) :]
    comment_end = after.index("-->\n") + len("-->\n")
    assert after[comment_end:].startswith(OPENING), "the marker must sit right above a ```python block"
    body = after[comment_end + len(OPENING) :]
    return body[: body.index("\n```\n") + 1]


def run_pytest(folder: Path) -> dict[str, tuple[str, str]]:
    """Run pytest on `folder` as a module author's project would; {test name: (outcome, message)}."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("CREDIT_", "PYTEST_"))}
    report = folder / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}", str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.exists(), result.stdout + result.stderr
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcome = ",".join(child.tag for child in problems) or "passed"
        message = " ".join(child.get("message", "") + (child.text or "") for child in problems)
        outcomes[case.get("name", "")] = (outcome, message)
    assert "warnings summary" not in result.stdout, result.stdout
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[str, str]]:
    folder = tmp_path_factory.mktemp("module-author")
    (folder / "test_readme_testing_example.py").write_text(readme_example("testing-your-module"))
    (folder / "greeter.py").write_text(readme_example("greeter-module"))  # the "Adding a module" example
    (folder / "test_readme_greeter.py").write_text(readme_example("greeter-test"))
    (folder / "test_misuse.py").write_text(MISUSE)
    return run_pytest(folder)


def test_the_testing_example_passes(outcomes):
    assert outcomes["test_balances_are_served_while_the_cache_is_down"] == ("passed", "")


def test_the_module_example_handles_its_event_and_serves_its_route(outcomes):
    """README "Adding a module": loaded through CREDIT_MODULES_EXTRA as it stands, tested as "Events" shows."""
    assert outcomes["test_new_users_are_greeted"] == ("passed", "")


def test_an_override_made_after_the_app_was_built_fails_the_test_saying_so(outcomes):
    outcome, message = outcomes["test_an_override_in_the_body_comes_too_late"]
    assert outcome == "error", outcomes  # at teardown: the body itself ran
    assert "credit_container.cache overridden after the app was built" in message
    assert "@pytest.mark.credit_override" in message


def test_a_misspelt_provider_is_named_with_the_one_meant(outcomes):
    outcome, message = outcomes["test_a_misspelt_provider"]
    assert outcome == "error", outcomes
    assert "the container has no provider 'cahce' (did you mean 'cache'?)" in message
