"""Observability: request ids on every response, JSON log lines carrying them, no secrets in the
log, and /metrics with request counters by module and route plus module health gauges."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import time
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.observability.logging import JsonFormatter, logging_config
from app.observability.metrics import Metrics, RequestCounts
from app.observability.requests import route_template
from app.serving import MULTIPROC_ENV, CreditServer, gunicorn_options, multiprocess_metrics_dir
from app.testing import bearer, login, register
from tests.helpers import METRICS_TOKEN, FailingWallet

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def log_lines():
    """Every log line emitted during the test, formatted by the app's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lambda: [line for line in stream.getvalue().splitlines() if line]
    root.removeHandler(handler)
    root.setLevel(old_level)


def samples(client, name: str) -> dict[tuple, float]:
    """Scrape /metrics: {sorted label items: value} of one sample name."""
    response = client.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(found: dict[tuple, float], **labels: str) -> float:
    """The sum over samples whose labels include `labels`."""
    return sum(v for key, v in found.items() if set(labels.items()) <= set(key))


# -- request ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc-123", "A.b_c-9", "x" * 128, "0"])
def test_a_well_formed_request_id_is_echoed(client, given):
    assert client.get("/livez", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given


def test_a_request_id_is_generated_when_none_is_given(client):
    first, second = (client.get("/livez").headers["X-Request-ID"] for _ in range(2))
    assert HEX32.fullmatch(first) and HEX32.fullmatch(second) and first != second


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "semi;colon", "../etc", 'quote"d', "é"])
def test_a_malformed_request_id_is_replaced(client, given):
    assert HEX32.fullmatch(client.get("/livez", headers={"X-Request-ID": given}).headers["X-Request-ID"])


@pytest.mark.parametrize(
    "method, path, kwargs, status",
    [
        ("get", "/no/such/path", {}, 404),
        ("delete", "/livez", {}, 405),
        ("get", "/users/me", {}, 401),
        ("post", "/users", {"data": "{not json", "content_type": "application/json"}, 400),
        ("post", "/users", {"json": {"username": "x"}}, 422),
        ("get", "/wallet/balance/nobody", {"headers": {"Authorization": "Bearer not-a-token"}}, 401),
    ],
)
def test_error_responses_carry_the_request_id(client, method, path, kwargs, status):
    headers = {**kwargs.pop("headers", {}), "X-Request-ID": "err-42"}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == status
    assert response.headers.getlist("X-Request-ID") == ["err-42"]  # once, whichever path answered


# -- JSON logs ----------------------------------------------------------------------------------


def test_every_log_line_is_json_and_the_access_line_has_the_request_fields(client, log_lines):
    client.get("/livez", headers={"X-Request-ID": "req-1"})
    client.get("/transactions/t-1", headers={"X-Request-ID": "req-2"})
    records = [json.loads(line) for line in log_lines()]
    access = [r for r in records if r["logger"] == "app.access"]
    assert [r["request_id"] for r in access] == ["req-1", "req-2"]
    livez, transaction = access
    assert livez["level"] == "INFO" and livez["timestamp"] and livez["message"] == "GET /livez 200"
    assert {k: livez[k] for k in ("method", "path", "status", "module")} == {
        "method": "GET",
        "path": "/livez",
        "status": 200,
        "module": "kernel",
    }
    assert isinstance(livez["duration_ms"], float) and livez["duration_ms"] >= 0
    assert (transaction["path"], transaction["status"], transaction["module"]) == (
        "/transactions/t-1",
        401,
        "transactions_module",
    )


def test_a_line_logged_while_handling_a_request_has_its_id_and_exc_info(app, client, log_lines):
    def boom():
        logging.getLogger("app.test").warning("about to fail")
        raise ZeroDivisionError("boom")

    app.add_url_rule("/boom", "boom", boom)
    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500 and response.headers["X-Request-ID"] == "boom-1"
    records = [json.loads(line) for line in log_lines()]
    assert all(r["request_id"] == "boom-1" for r in records), records
    warning = next(r for r in records if r["message"] == "about to fail")
    assert (warning["level"], warning["logger"]) == ("WARNING", "app.test")
    failure = next(r for r in records if r["message"] == "unhandled error")
    assert failure["level"] == "ERROR"
    assert isinstance(failure["exc_info"], str) and "ZeroDivisionError: boom" in failure["exc_info"]


def test_outside_a_request_there_is_no_request_id(log_lines):
    logging.getLogger("app.test").info("no request here")
    (record,) = [json.loads(line) for line in log_lines()]
    assert record["message"] == "no request here" and "request_id" not in record


def test_no_password_or_token_reaches_the_log(client, log_lines):
    password = "Sup3r-Secret-Passw0rd"
    register(client, "logged", password=password)
    token = login(client, "logged", password=password)
    client.post("/auth/login", json={"username": "logged", "password": "Wrong-" + password})
    client.get("/users/me", headers=bearer(token))
    client.get("/users/me", headers=bearer(token + "tampered"))
    lines = log_lines()
    assert sum(json.loads(line)["logger"] == "app.access" for line in lines) == 5
    text = "\n".join(lines)
    assert password not in text and token not in text and token.split(".")[-1] not in text
    assert "Bearer" not in text and "$argon2" not in text


def test_logging_config_routes_gunicorn_through_the_json_handler():
    config = logging_config("debug")
    assert config["formatters"]["json"]["()"] is JsonFormatter
    assert config["root"] == {"level": "DEBUG", "handlers": ["json"]}
    for name in ("gunicorn.error", "gunicorn.access"):
        assert config["loggers"][name]["handlers"] == [] and config["loggers"][name]["propagate"]
    assert config["loggers"]["gunicorn.access"]["level"] == "WARNING"  # app.access has the line
    assert config["disable_existing_loggers"] is False


# -- metrics ------------------------------------------------------------------------------------


def test_request_counters_grow_by_module_and_route_template(client):
    before = samples(client, "credit_http_requests_total")
    for _ in range(3):
        client.get("/livez")
    for tid in ("t-1", "t-2"):
        client.get(f"/transactions/{tid}")
    after = samples(client, "credit_http_requests_total")
    livez = dict(module="kernel", route="/livez", method="GET", status="200")
    assert value(after, **livez) - value(before, **livez) == 3
    transaction = dict(module="transactions_module", route="/transactions/<transaction_id>", method="GET", status="401")
    assert value(after, **transaction) == 2
    assert not any("t-1" in str(key) for key in after), "raw paths must never become labels"
    latency = samples(client, "credit_http_request_duration_seconds_count")
    assert value(latency, module="kernel", route="/livez") == value(after, module="kernel", route="/livez")


def test_unmatched_paths_and_odd_methods_do_not_mint_labels(client):
    for path in ("/a", "/b/c", "/d"):
        client.get(path)
    client.open("/livez", method="BREW")
    found = samples(client, "credit_http_requests_total")
    assert value(found, module="kernel", route="<unmatched>", status="404") == 3
    assert value(found, method="OTHER") == 1 and not value(found, method="BREW")


def test_module_gauges_are_healthy_and_initialized(client):
    health = samples(client, "credit_module_health")
    status = samples(client, "credit_module_status")
    for module in ("connection_api", "user_management", "wallet_module", "transactions_module"):
        assert value(health, module=module) == 1.0
        assert value(status, module=module, status="initialized") == 1.0
        assert value(status, module=module) == 1.0  # exactly one status is set


@pytest.mark.credit_override(wallet_module=FailingWallet)
def test_module_gauges_reflect_a_failed_module(client):
    health = samples(client, "credit_module_health")
    status = samples(client, "credit_module_status")
    assert value(status, module="wallet_module", status="failed") == 1.0
    assert value(status, module="transactions_module", status="skipped") == 1.0
    assert value(status, module="user_management", status="initialized") == 1.0
    assert value(health, module="wallet_module") == 0.0
    assert value(health, module="transactions_module") == 0.0
    assert value(health, module="user_management") == 1.0


@pytest.mark.credit_settings(modules_disabled="transactions_module")
def test_a_disabled_module_has_a_status_but_no_health(client):
    status = samples(client, "credit_module_status")
    health = samples(client, "credit_module_health")
    assert value(status, module="transactions_module", status="disabled") == 1.0
    assert value(health, module="wallet_module") == 1.0
    assert not [key for key in health if ("module", "transactions_module") in key]


def test_metrics_is_in_the_openapi_document(client):
    operation = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]


def test_apps_in_one_process_keep_separate_registries():
    first, second = Metrics(), Metrics()
    first.observe("kernel", "/livez", "GET", 200, 0.01)
    livez = {"module": "kernel", "route": "/livez", "method": "GET", "status": "200"}
    assert first.registry.get_sample_value("credit_http_request_duration_seconds_count", livez) == 1.0
    assert second.registry.get_sample_value("credit_http_request_duration_seconds_count", livez) is None


def test_the_request_counter_is_the_latency_histograms_count_per_series():
    metrics = Metrics()
    for status, seconds in ((200, 0.001), (200, 0.5), (404, 0.002)):
        metrics.observe("kernel", "/livez", "GET", status, seconds)
    families = {family.name: family for family in RequestCounts(metrics.registry).collect()}
    counted = {sample.labels["status"]: sample.value for sample in families["credit_http_requests"].samples}
    assert counted == {"200": 2.0, "404": 1.0}
    assert {sample.name for sample in families["credit_http_requests"].samples} == {"credit_http_requests_total"}


@pytest.mark.parametrize(
    "rule, template",
    [
        ("/transactions/<string:transaction_id>", "/transactions/<transaction_id>"),
        ("/modules/<name>/health", "/modules/<name>/health"),
        ("/livez", "/livez"),
    ],
)
def test_route_template_drops_converters(rule, template):
    assert route_template(rule) == template


# -- serving ------------------------------------------------------------------------------------


def test_serve_makes_a_private_metrics_dir_and_removes_it(monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_metrics_dir() as path:
        assert os.environ[MULTIPROC_ENV] == path and os.path.isdir(path) and not os.listdir(path)
    assert not os.path.exists(path) and MULTIPROC_ENV not in os.environ


def test_serve_keeps_an_operator_metrics_dir(monkeypatch, tmp_path):
    given = tmp_path / "metrics"
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_metrics_dir() as path:
        assert path == str(given) and given.is_dir()
    assert given.is_dir()


def test_gunicorn_logs_json_at_the_given_level():
    options = gunicorn_options("127.0.0.1:0", 2, 1, 30, "WARNING")
    assert options["loglevel"] == "warning"
    assert options["logconfig_dict"] == logging_config("WARNING")


def _write_worker_sample(directory, kind: str, pid: int, name: str, value: float) -> None:
    """One sample in the file a worker with this pid writes in the multiprocess directory."""
    sample = f"{name}_total" if kind == "counter" else name
    store = MmapedDict(str(directory / f"{kind}_{pid}.db"))
    try:
        store.write_value(mmap_key(name, sample, [], [], "test"), value, time.time())
    finally:
        store.close()


def _scrape(directory) -> dict[str, float | None]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {name: registry.get_sample_value(name) for name in ("busy", "done_total")}


def test_gunicorn_drops_a_dead_workers_live_gauges(monkeypatch, tmp_path, settings):
    """The master calls child_exit when a worker exits: the scrape stops counting that worker's
    live gauges (their file is removed), while its counters stay."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    monkeypatch.setenv(MULTIPROC_ENV, str(metrics))
    dead, alive = 40001, 40002
    for pid in (dead, alive):
        _write_worker_sample(metrics, "gauge_livesum", pid, "busy", 1.0)
        _write_worker_sample(metrics, "counter", pid, "done", 5.0)
    assert _scrape(metrics) == {"busy": 2.0, "done_total": 10.0}

    # The hook as gunicorn holds it once CreditServer has loaded its options, called as the arbiter does.
    config = CreditServer(settings, gunicorn_options("127.0.0.1:0", 2, 1, 30, "warning")).cfg
    config.child_exit(None, SimpleNamespace(pid=dead))

    assert _scrape(metrics) == {"busy": 1.0, "done_total": 10.0}
    assert sorted(os.listdir(metrics)) == [f"counter_{dead}.db", f"counter_{alive}.db", f"gauge_livesum_{alive}.db"]


def test_serve_trusts_the_proxies_it_is_told_else_gunicorns_default(settings):
    told = CreditServer(settings, gunicorn_options("127.0.0.1:0", 2, 1, 30, forwarded_allow_ips="10.0.0.0/8")).cfg
    default = CreditServer(settings, gunicorn_options("127.0.0.1:0", 2, 1, 30)).cfg
    assert (told.forwarded_allow_ips, default.forwarded_allow_ips) == (["10.0.0.0/8"], ["127.0.0.1", "::1"])


def test_each_worker_freezes_what_start_up_built_out_of_the_collectors_reach():
    import gc

    options = gunicorn_options("127.0.0.1:0", 2, 1, 30, "warning")
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        options["post_worker_init"](worker=None)
        assert gc.get_freeze_count() > 100_000 / 10  # this test process's modules and objects, at least
    finally:
        gc.unfreeze()


def test_serve_picks_sync_gthread_or_the_gevent_worker_it_is_told():
    from app import cli, serving

    assert gunicorn_options("127.0.0.1:0", 2, 1, 30)["worker_class"] == "sync"
    assert gunicorn_options("127.0.0.1:0", 2, 4, 30)["worker_class"] == "gthread"
    assert gunicorn_options("127.0.0.1:0", 2, 1, 30, worker_class="gevent")["worker_connections"] == 1000
    with pytest.raises(ValueError, match="worker class"):
        gunicorn_options("127.0.0.1:0", 2, 1, 30, worker_class="eventlet")
    # The command line lists the same choices without importing gunicorn for every command.
    assert cli.WORKER_CLASSES == serving.WORKER_CLASSES
