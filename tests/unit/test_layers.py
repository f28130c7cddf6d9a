"""The layers point down: the service layer can be imported without the web framework.

The import-linter contracts in pyproject.toml (run by `make lint`) hold the whole rule;
this checks its most useful consequence in a fresh interpreter, as a worker or the CLI
would import a service.
"""

from __future__ import annotations

import subprocess
import sys

WEB = ("flask", "werkzeug", "flask_smorest", "webargs", "apispec")


def test_importing_the_services_loads_no_web_framework():
    modules = ["app.services.ledger", "app.services.wallets", "app.services.transactions", "app.services.users"]
    script = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB!r}))\n"
        + "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_app_package_still_offers_the_factory():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from app import build_container, create_app, plan_modules; import sys; print('flask' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr


def test_the_app_runs_without_the_testing_kit_or_pytest():
    """The pytest plugin ships in the package, but serving, the CLI and a worker never load it:
    pytest is a dev extra."""
    script = (
        "import sys\n"
        "import app.cli, app.serving, containers\n"
        "from app import create_app, build_container\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pytest', '_pytest') or m == 'app.testing')\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
