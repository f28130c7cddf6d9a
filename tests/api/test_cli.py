"""The `credit-system` command line: `check` and `modules`, in-process through click's CliRunner
and once through the installed console script; what `check` says about the database and the
variables, and the one line a missing database driver gets.

Every run gets its own environment (the plugin's `credit_cli`): the test's database and cache
on the selected backend and an explicit secret key; CREDIT_* variables from the outer
environment are removed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from app.config import Settings
from tests import fixtures_modules

SHIPPED_ORDER = [
    "connection_api",
    "user_management",
    "audit_module",
    "wallet_module",
    "notification_module",
    "transactions_module",
    "integration_module",
    "reporting_module",
]
SHIPPED_EDGES = {
    ("user_management", "connection_api"),
    ("audit_module", "connection_api"),
    ("audit_module", "user_management"),
    ("wallet_module", "connection_api"),
    ("wallet_module", "user_management"),
    ("transactions_module", "connection_api"),
    ("transactions_module", "user_management"),
    ("transactions_module", "wallet_module"),
    ("integration_module", "connection_api"),
    ("integration_module", "user_management"),
    ("integration_module", "wallet_module"),
    ("integration_module", "transactions_module"),
    ("reporting_module", "connection_api"),
    ("reporting_module", "user_management"),
    ("reporting_module", "wallet_module"),
    ("reporting_module", "transactions_module"),
    ("notification_module", "connection_api"),
    ("notification_module", "user_management"),
    ("notification_module", "wallet_module"),
}
FX = "tests.fixtures_modules"
CYCLE = f"{FX}.cycle:Alpha,{FX}.cycle:Beta,{FX}.cycle:Gamma"
SETTING_VARIABLES = [f"CREDIT_{f.name.upper()}" for f in fields(Settings)] + ["CREDIT_CONFIG"]


@pytest.fixture
def cli_env(credit_cli) -> dict[str, str | None]:
    return credit_cli.env


@pytest.fixture(autouse=True)
def _clean_records():
    fixtures_modules.reset()
    yield
    fixtures_modules.reset()


@pytest.fixture
def cli(credit_cli):
    return credit_cli


# -- check ------------------------------------------------------------------------------------
def test_check_on_the_shipped_config_exits_0(cli):
    result = cli("check")
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.strip().splitlines()[-1]
        == f"ok: {len(SHIPPED_ORDER)} modules, load order: {' -> '.join(SHIPPED_ORDER)}"
    )
    assert "MOD-" not in result.output


def test_check_through_the_installed_console_script(cli_env, tmp_path):
    script = Path(sys.executable).parent / "credit-system"
    assert script.exists(), script
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES}
    env.update({k: v for k, v in cli_env.items() if v is not None})
    ok = subprocess.run([str(script), "check"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"load order: {' -> '.join(SHIPPED_ORDER)}" in ok.stdout


def test_check_on_the_selected_test_backend_exits_0(cli, backend_urls):
    database_url, cache_url = backend_urls
    result = cli("check", CREDIT_DATABASE_URL=database_url, CREDIT_CACHE_URL=cache_url)
    assert result.exit_code == 0, result.output


def test_check_reports_a_cycle_with_its_whole_path(cli):
    result = cli("check", CREDIT_MODULES_EXTRA=CYCLE)
    assert result.exit_code == 1
    assert "MOD-E001 [alpha] dependency cycle: alpha -> beta -> gamma -> alpha" in result.stdout
    assert "hint: break the cycle" in result.stdout
    assert "1 finding(s)" in result.stdout
    # The graph is checked before anything is built.
    assert fixtures_modules.EVENTS == []


def test_check_reports_every_cycle_and_a_self_dependency(cli):
    extra = ",".join([CYCLE, f"{FX}.cycle:Delta", f"{FX}.cycle:Epsilon", f"{FX}.cycle:Selfish"])
    result = cli("check", CREDIT_MODULES_EXTRA=extra)
    assert result.exit_code == 1
    cycles = [line for line in result.stdout.splitlines() if line.startswith("MOD-E001")]
    assert cycles == [
        "MOD-E001 [selfish] dependency cycle: selfish -> selfish",
        "MOD-E001 [delta] dependency cycle: delta -> epsilon -> delta",
        "MOD-E001 [alpha] dependency cycle: alpha -> beta -> gamma -> alpha",
    ]
    assert fixtures_modules.EVENTS == []


def test_check_suggests_the_module_meant(cli):
    result = cli("check", CREDIT_MODULES_EXTRA=f"{FX}.problems:Typo")
    assert result.exit_code == 1
    assert "MOD-E002 [typo_module] depends on unknown module 'walet_module'" in result.stdout
    assert "did you mean 'wallet_module'" in result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.problems:Sneaky"},
            "MOD-E003 [sneaky] receives module 'wallet_module' but does not declare it",
        ),
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.problems:Lazy"},
            "MOD-W004 [lazy] declares 'wallet_module' but its provider does not receive it",
        ),
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.problems:Impostor"},
            "MOD-E005 [wallet_module] extra module CREDIT_MODULES_EXTRA tests.fixtures_modules.problems:Impostor",
        ),
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.problems:RoutesA,{FX}.problems:RoutesB"},
            "MOD-E006 [routes_b] GET /collide is registered by both routes_a and routes_b",
        ),
        (
            {"CREDIT_MODULES_DISABLED": "user_management"},
            "MOD-W007 [user_management] disabled module 'user_management' is needed by audit_module, "
            "integration_module, notification_module, reporting_module, transactions_module, wallet_module",
        ),
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.no_such_file:Thing"},
            f"MOD-E009 cannot import extra module {FX}.no_such_file:Thing",
        ),
        (
            {"CREDIT_MODULES_EXTRA": f"{FX}.problems:NeedsMissing"},
            "MOD-E010 [needs_missing] constructor parameter 'payment_gateway' matches no module",
        ),
        (
            {"CREDIT_MODULES_DISABLED": "walet_module"},
            "MOD-W011 CREDIT_MODULES_DISABLED names unknown module 'walet_module'",
        ),
    ],
    ids=["E003", "W004", "E005", "E006", "W007", "E009", "E010", "W011"],
)
def test_check_reports_each_finding_and_exits_1(cli, env, expected):
    result = cli("check", **env)
    assert result.exit_code == 1, result.output
    assert expected in result.stdout
    assert "hint: " in result.stdout


def test_check_reports_a_module_that_fails_to_initialize(cli):
    result = cli("check", CREDIT_MODULES_EXTRA=f"{FX}.lifecycle:Exploding")
    assert result.exit_code == 1
    assert "module exploding failed to initialize: RuntimeError: optional backend exploded" in result.stdout
    assert "0 finding(s), 1 failed module(s)" in result.stdout


def test_check_accepts_a_well_formed_extra_module(cli):
    result = cli("check", CREDIT_MODULES_EXTRA=f"{FX}.problems:Plain")
    assert result.exit_code == 0, result.output
    assert (
        f"ok: {len(SHIPPED_ORDER) + 1} modules, load order: connection_api -> plain -> user_management" in result.stdout
    )


# -- modules --------------------------------------------------------------------------------
def table_rows(output: str) -> list[list[str]]:
    lines = output.strip().splitlines()
    assert lines[0].split() == ["#", "module", "status", "init", "ms", "depends", "on"]
    return [line.split(None, 3) for line in lines[1:]]


def test_modules_prints_the_table_in_load_order(cli):
    result = cli("modules")
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout)
    assert [(r[0], r[1], r[2]) for r in rows] == [(str(i), n, "initialized") for i, n in enumerate(SHIPPED_ORDER)]
    init_ms_and_deps = {r[1]: r[3].split(None, 1) for r in rows}
    assert all(float(v[0]) >= 0 for v in init_ms_and_deps.values())
    assert init_ms_and_deps["connection_api"][1] == "-"
    assert init_ms_and_deps["transactions_module"][1] == "connection_api, user_management, wallet_module"


def test_modules_table_shows_failed_and_skipped(cli):
    result = cli("modules", CREDIT_MODULES_EXTRA=f"{FX}.lifecycle:AfterExploding,{FX}.lifecycle:Exploding")
    assert result.exit_code == 0, result.output
    statuses = {r[1]: r[2] for r in table_rows(result.stdout)}
    assert statuses == {
        **dict.fromkeys(SHIPPED_ORDER, "initialized"),
        "exploding": "failed",
        "after_exploding": "skipped",
    }


def test_modules_with_a_broken_graph_exits_1_with_findings_on_stderr(cli):
    result = cli("modules", CREDIT_MODULES_EXTRA=CYCLE)
    assert result.exit_code == 1
    assert "alpha -> beta -> gamma -> alpha" in result.stderr
    assert fixtures_modules.EVENTS == []


def mermaid_edges(output: str) -> set[tuple[str, str]]:
    return {tuple(line.strip().split(" --> ")) for line in output.splitlines() if " --> " in line}


def test_modules_graph_mermaid(cli):
    result = cli("modules", "--graph", "mermaid")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "graph LR"
    assert "  wallet_module --> user_management" in lines
    assert mermaid_edges(result.stdout) == SHIPPED_EDGES
    assert "  connection_api" in lines  # a module without dependencies still appears


def test_modules_graph_dot(cli):
    result = cli("modules", "--graph", "dot")
    assert result.exit_code == 0, result.output
    text = result.stdout.strip()
    assert text.startswith("digraph modules {") and text.endswith("}")
    edges = {
        tuple(part.strip(' ";').strip('"') for part in line.split(" -> "))
        for line in text.splitlines()
        if " -> " in line
    }
    assert edges == SHIPPED_EDGES
    assert '  "wallet_module" -> "user_management";' in text.splitlines()
    for name in SHIPPED_ORDER:
        assert f'  "{name}";' in text.splitlines()


def test_modules_graph_without_a_format_prints_dot(cli):
    result = cli("modules", "--graph")
    assert result.exit_code == 0, result.output
    assert result.stdout == cli("modules", "--graph", "dot").stdout
    assert result.stdout.startswith("digraph modules {")


def test_modules_graph_marks_disabled_modules(cli):
    result = cli("modules", "--graph", "dot", CREDIT_MODULES_DISABLED="transactions_module")
    assert '  "transactions_module" [style=dashed];' in result.stdout.splitlines()
    assert '  "wallet_module";' in result.stdout.splitlines()


def test_modules_graph_shows_a_cycle(cli):
    """The graph of a broken configuration is when it is needed most: cycle members are drawn."""
    result = cli("modules", "--graph", "mermaid", CREDIT_MODULES_EXTRA=CYCLE)
    assert result.exit_code == 0, result.output
    assert {("alpha", "beta"), ("beta", "gamma"), ("gamma", "alpha")} <= mermaid_edges(result.stdout)
    assert SHIPPED_EDGES <= mermaid_edges(result.stdout)
    dot = cli("modules", "--graph", "dot", CREDIT_MODULES_EXTRA=CYCLE).stdout
    assert '  "gamma" -> "alpha";' in dot.splitlines()
    assert fixtures_modules.EVENTS == []


# -- the database and the variables check looks at ------------------------------------------
def test_check_names_the_database_it_looked_at(cli, cli_env):
    result = cli("check")
    assert result.stdout.splitlines()[0] == f"database: {cli_env['CREDIT_DATABASE_URL']}"


def test_check_fails_on_a_database_that_was_never_migrated(cli, tmp_path):
    result = cli("check", CREDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.exit_code == 1, result.output
    assert "database schema not migrated: run `credit-system db upgrade`" in result.stdout.splitlines()
    assert result.stdout.splitlines()[-1] == "0 finding(s), 0 failed module(s), 1 configuration problem(s)"


def test_check_fails_on_an_unreachable_database_and_masks_its_password(cli):
    result = cli("check", CREDIT_DATABASE_URL="postgresql://app:s3cret@127.0.0.1:1/credit")  # port 1: refused
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "database: postgresql+psycopg://app:***@127.0.0.1:1/credit"
    assert any(line.startswith("database unreachable: ") for line in lines), lines
    assert "s3cret" not in result.output


def test_check_fails_on_a_misspelled_variable_and_says_which_was_meant(cli, cli_env):
    result = cli("check", CREDIT_DATABSE_URL="postgresql://app@db.example/credit")
    assert result.exit_code == 1, result.output
    assert "unknown variable CREDIT_DATABSE_URL is ignored (did you mean CREDIT_DATABASE_URL?)" in result.stdout
    assert result.stdout.splitlines()[0] == f"database: {cli_env['CREDIT_DATABASE_URL']}"


def test_other_commands_warn_about_a_misspelled_variable(cli, caplog):
    with caplog.at_level(logging.WARNING):
        result = cli("ledger", "verify", CREDIT_CACHE_ULR="redis://cache.example/0")
    assert result.exit_code == 0, result.output
    assert [r.getMessage() for r in caplog.records if r.name == "app.cli"] == [
        "unknown variable CREDIT_CACHE_ULR is ignored (did you mean CREDIT_CACHE_URL?)"
    ]


def test_commands_on_a_database_never_migrated_say_so_in_one_line(cli, tmp_path):
    result = cli("ledger", "verify", CREDIT_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert result.exit_code == 1
    assert result.stderr == "Error: database schema not migrated: run `credit-system db upgrade`\n"


# -- without the PostgreSQL driver (a plain `pip install .`) ---------------------------------
WITHOUT_PSYCOPG = "import sys; sys.modules['psycopg'] = None; from app.cli import main; main()"


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve"], ["check"]])
def test_a_postgresql_url_without_its_driver_is_one_line_naming_the_extra(cli_env, tmp_path, command):
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES}
    env.update({k: v for k, v in cli_env.items() if v is not None})
    env["CREDIT_DATABASE_URL"] = "postgresql://app@db.example/credit"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == (
        "",
        "Error: CREDIT_DATABASE_URL: the postgresql+psycopg driver (psycopg) is not installed: "
        "pip install 'credit-system[postgres]'\n",
    )


# -- without gevent (an extra: `serve`'s default is sync workers behind nginx) --------------
WITHOUT_GEVENT = "import sys; sys.modules['gevent'] = None; from app.cli import main; main()"


def test_gevent_workers_without_gevent_are_one_line_naming_the_extra(cli_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SETTING_VARIABLES}
    env.update({k: v for k, v in cli_env.items() if v is not None})
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_GEVENT, "serve", "--bind", "127.0.0.1:1", "--worker-class", "gevent"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        "Error: --worker-class gevent needs gevent: pip install 'credit-system[gevent]'\n",
    )


def test_nginx_config_names_the_upstream_and_the_listen_address(cli):
    result = cli(
        "nginx-config", "--upstream", "10.0.0.5:8000", "--listen", "443 ssl", "--server-name", "credit.example"
    )
    assert result.exit_code == 0, result.output
    assert "    server 10.0.0.5:8000;\n" in result.stdout
    assert "    listen 443 ssl;\n" in result.stdout and "    server_name credit.example;\n" in result.stdout
