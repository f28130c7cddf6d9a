"""The `credit-system` command line."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence

import click

from app.config import ConfigError, load_settings, unknown_variables
from app.kernel.findings import WiringError

log = logging.getLogger(__name__)


def _settings(warn: bool = True):
    """The settings from the environment; a CREDIT_* name that is no setting is logged as a warning."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    for message in unknown_variables() if warn else ():
        log.warning("%s", message)
    return settings


def _database_line(settings) -> str:
    """Which database a command looks at (a misspelled variable would have replaced it silently)."""
    from app.infrastructure.database_url import masked_url

    return f"database: {masked_url(settings.database_url)}"


class _Cli(click.Group):
    """Operators get one line for a database problem, not a traceback."""

    def invoke(self, ctx):
        from sqlalchemy.exc import DBAPIError

        from app.infrastructure.migrations import SchemaNotCurrent

        try:
            return super().invoke(ctx)
        except SchemaNotCurrent as exc:
            raise click.ClickException(str(exc)) from None
        except DBAPIError as exc:
            hint = (
                " (has `credit-system db upgrade` been run?)"
                if "no such table" in str(exc.orig) or "does not exist" in str(exc.orig)
                else ""
            )
            raise click.ClickException(f"database error: {str(exc.orig).strip().splitlines()[0]}{hint}") from None


SERVERS = ("run", "serve", "worker")  # long-running: JSON log lines
# The `serve` choices, without importing gunicorn for every command (app.serving has them too).
WORKER_CLASSES = ("sync", "gthread", "gevent")


@click.group(cls=_Cli)
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
@click.pass_context
def main(ctx: click.Context, log_level: str) -> None:
    """Credit System: a double-entry credit ledger served as a REST API."""
    ctx.obj = {"log_level": log_level.upper()}
    if ctx.invoked_subcommand in SERVERS:
        from app.observability.logging import configure_logging

        configure_logging(log_level)  # servers: one JSON object per log line
        return
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def run(host: str, port: int) -> None:
    """Development server on the configured (by default embedded SQLite) database."""
    from werkzeug.serving import make_server

    from app.events.worker import EventWorker
    from app.infrastructure.migrations import upgrade
    from app.observability.logging import quiet_request_handler

    settings = _settings()
    upgrade(settings.database_url)
    app = _create_or_exit(settings)
    # One worker in this process (no signal handlers: werkzeug's thread serves), so the
    # embedded default delivers every event with this one command.
    worker = EventWorker(app.events, concurrency=2, signals=False)
    worker.start()
    try:
        # werkzeug's own start-up message (run_simple's) is a multi-line record with terminal
        # colour codes, lost among the JSON lines; the server is made here and announced plainly.
        server = make_server(host, port, app, threaded=True, request_handler=quiet_request_handler())
        url = f"http://{f'[{host}]' if ':' in host else host}:{server.port}"
        log.info("development server on %s (for production: credit-system serve)", url)
        _tell_a_person(f"Serving on {url} (docs: {url}/docs)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        worker.stop()
        app.module_manager.shutdown()


def _tell_a_person(line: str) -> None:
    """Print line on the terminal, if there is one: output read by a program stays JSON log lines."""
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            print(line, file=stream, flush=True)
            return


@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="host:port to listen on.")
@click.option("--workers", default=None, type=int, help="Worker processes [default: 2 x CPUs + 1].")
@click.option(
    "--worker-class",
    type=click.Choice(WORKER_CLASSES),
    default=None,
    help="gunicorn worker [default: sync, or gthread with --threads above 1]. sync expects a "
    "buffering proxy in front (credit-system nginx-config); gevent (pip install "
    "'credit-system[gevent]') serves slow clients itself. See the README's Serving section.",
)
@click.option("--threads", default=1, show_default=True, type=int, help="Threads per worker (gthread).")
@click.option("--timeout", default=30, show_default=True, type=int, help="Worker timeout in seconds.")
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies whose X-Forwarded-For gives the client's address (comma-separated addresses or "
    "networks, * for any) [default: $FORWARDED_ALLOW_IPS, or 127.0.0.1,::1].",
)
@click.pass_obj
def serve(
    obj: dict,
    bind: str,
    workers: int | None,
    worker_class: str | None,
    threads: int,
    timeout: int,
    forwarded_allow_ips: str | None,
) -> None:
    """Production server (gunicorn); requires CREDIT_SECRET_KEY."""
    from app.serving import missing_worker_package
    from app.serving import serve as run_gunicorn

    missing = missing_worker_package(worker_class)
    if missing:
        raise click.ClickException(missing)
    settings = _settings()
    if settings.secret_key_generated:
        raise click.ClickException(
            "CREDIT_SECRET_KEY must be set for `serve` (at least 32 bytes; generate one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    run_gunicorn(
        settings,
        bind=bind,
        workers=workers,
        threads=threads,
        timeout=timeout,
        log_level=obj["log_level"],
        worker_class=worker_class,
        forwarded_allow_ips=forwarded_allow_ips,
    )


@main.command("nginx-config")
@click.option("--upstream", default="127.0.0.1:8000", show_default=True, help="host:port `serve` is bound to.")
@click.option("--listen", default="80", show_default=True, help="nginx's `listen` (port, or address:port).")
@click.option("--server-name", default="_", show_default=True, help="nginx's `server_name`.")
def nginx_config(upstream: str, listen: str, server_name: str) -> None:
    """Print an nginx configuration that buffers slow clients in front of `serve` (README: Serving)."""
    from app.proxy import nginx_config as render

    click.echo(render(upstream, listen, server_name), nl=False)


@main.group()
def db() -> None:
    """Database schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to the configured database."""
    from app.infrastructure.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@main.command("create-admin")
@click.option("--username", required=True)
@click.option("--email", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=True)
def create_admin(username: str, email: str, password: str) -> None:
    """Create an admin, or promote an existing user (and set its password)."""
    from marshmallow import ValidationError

    from app import build_container
    from app.schemas.users import UserCreateSchema
    from app.services.errors import DomainError

    try:
        UserCreateSchema().load({"username": username, "email": email, "password": password})
    except ValidationError as exc:
        raise click.ClickException(f"invalid input: {exc.messages}") from exc
    container = build_container(_settings())
    try:
        user, created = container.user_service().ensure_admin(username, email, password)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        container.database().dispose()
    click.echo(f"{'created' if created else 'promoted'} admin {user.username} ({user.id})")


@main.group()
def ledger() -> None:
    """Ledger integrity."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Check every invariant: balanced transactions, balances equal entries, none negative,
    each entry's balance_after the running sum of its wallet."""
    from app import build_container
    from app.services.ledger_verify import LedgerVerifier

    settings = _settings()
    click.echo(_database_line(settings))
    container = build_container(settings)
    try:
        report = LedgerVerifier(container.database()).verify()
    finally:
        container.database().dispose()
    click.echo(
        f"transactions: {report.transactions}, wallets: {report.wallets}, "
        f"issued: {report.issued}, redeemed: {report.redeemed}, held in wallets: {report.total_balance}"
    )
    problems: list[tuple[str, Sequence[object]]] = [
        ("unbalanced transaction", report.unbalanced_transactions),
        ("transaction without entries", report.transactions_without_entries),
        ("stored balance differs from entries", report.wrong_balances),
        ("negative balance", report.negative_balances),
        ("entry's balance_after differs from its wallet's running sum", report.wrong_balances_after),
    ]
    for label, items in problems:
        for item in items:
            click.echo(f"{label}: {item}")
    if report.total_balance != report.issued - report.redeemed:
        click.echo(
            f"money not conserved: wallets hold {report.total_balance}, "
            f"issued - redeemed = {report.issued - report.redeemed}"
        )
    if not report.ok:
        sys.exit(1)
    click.echo("ledger ok")


@main.group()
def report() -> None:
    """Reports for cron jobs: the same data as /reports/summary and /wallet/statement."""


def _report_table(rows: Iterable[dict], columns: Sequence[str], output_format: str) -> None:
    import csv

    if output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([row[column] for column in columns] for row in rows)
        return
    rows = list(rows)
    widths = {c: max([len(c), *(len(str(row[c])) for row in rows)]) for c in columns}
    click.echo("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        click.echo("  ".join(str(row[c]).ljust(widths[c]) for c in columns))


def _report_query(schema, params: dict) -> dict:
    from marshmallow import ValidationError

    try:
        return schema.load({name: value for name, value in params.items() if value is not None})
    except ValidationError as exc:
        raise click.UsageError(f"invalid options: {exc.messages}") from exc


_REPORT_FORMAT = click.option("--format", "output_format", type=click.Choice(["table", "csv"]), default="table")


@report.command("summary")
@click.option("--from", "start", required=True, help="ISO 8601 date or date-time (local time in --tz)")
@click.option("--to", "end", required=True, help="ISO 8601; the interval is [from, to)")
@click.option("--interval", type=click.Choice(["day", "week", "month"]), default="day")
@click.option("--tz", default="UTC", help="IANA time zone of the buckets")
@_REPORT_FORMAT
def report_summary(start: str, end: str, interval: str, tz: str, output_format: str) -> None:
    """Counts and amounts per type, new and active users, per day, week or month."""
    from app import build_container
    from app.schemas.reports import SummaryQuerySchema
    from app.services.errors import DomainError
    from app.services.reports.reads import TYPE_KEYS, ReportService

    query = _report_query(SummaryQuerySchema(), {"from": start, "to": end, "interval": interval, "tz": tz})
    container = build_container(_settings())
    try:
        buckets = ReportService(container.database()).summary(
            query["start"], query["end"], query["interval"], query["zone"]
        )
    except DomainError as exc:
        raise click.UsageError(f"{exc.message}: {exc.details}") from exc
    finally:
        container.database().dispose()
    rows = []
    for bucket in buckets:
        row = {
            "start": bucket["start"].astimezone(query["zone"]).isoformat(),
            "end": bucket["end"].astimezone(query["zone"]).isoformat(),
        }
        for key in TYPE_KEYS.values():
            row[f"{key}_count"], row[f"{key}_amount"] = bucket[key]["count"], bucket[key]["amount"]
        row.update(new_users=bucket["new_users"], active_users=bucket["active_users"])
        rows.append(row)
    columns = ["start", "end", *(f"{k}_{m}" for k in TYPE_KEYS.values() for m in ("count", "amount"))]
    _report_table(rows, [*columns, "new_users", "active_users"], output_format)


@report.command("statement")
@click.argument("user_id")
@click.option("--from", "start", help="ISO 8601 (UTC unless an offset is given); default: the beginning")
@click.option("--to", "end", help="ISO 8601; default: now")
@_REPORT_FORMAT
def report_statement(user_id: str, start: str | None, end: str | None, output_format: str) -> None:
    """A wallet's entries with the balance after each, and its opening and closing balances."""
    from dataclasses import asdict

    from app import build_container
    from app.schemas.reports import StatementQuerySchema
    from app.services.errors import DomainError
    from app.services.principal import Principal
    from app.services.reports.reads import ReportService
    from app.vocabulary import Role

    query = _report_query(StatementQuerySchema(), {"from": start, "to": end})
    container = build_container(_settings())
    try:
        service = ReportService(container.database())
        operator = Principal("cli", Role.ADMIN.value)  # whoever runs the command reads the database anyway
        try:
            head, lines = service.statement(operator, user_id, query["start"], query["end"])
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        columns = ["transaction_id", "type", "amount", "balance_after", "counterparty_id", "created_at"]
        rows = ({**asdict(line), "created_at": line.created_at.isoformat()} for line in lines)
        if output_format == "csv":  # streamed: a long statement never sits in memory
            _report_table(rows, columns, "csv")
            return
        click.echo(
            f"statement of {user_id} from {head['start'].isoformat()} to {head['end'].isoformat()}: "
            f"opening {head['opening_balance']}, closing {head['closing_balance']}"
        )
        _report_table(list(rows), columns, "table")
    finally:
        container.database().dispose()


@main.command()
def purge() -> None:
    """Delete expired idempotency keys and token revocations, and event deliveries done longer
    than CREDIT_EVENTS_DONE_RETENTION_SECONDS ago (safe to run any time, e.g. from cron)."""
    from datetime import timedelta

    from app import build_container
    from app.events import store
    from app.infrastructure.tables import utcnow
    from app.services.idempotency import IdempotencyStore

    settings = _settings()
    container = build_container(settings)
    try:
        with container.database().unit_of_work() as uow:
            keys = IdempotencyStore.purge_expired(uow.session)
            uow.commit()
        tokens = container.auth_service().purge_expired_revocations()
        with container.database().unit_of_work() as uow:
            cutoff = utcnow() - timedelta(seconds=settings.events_done_retention_seconds)
            deliveries = store.purge_done(uow.session, cutoff)
            uow.commit()
    finally:
        container.database().dispose()
    click.echo(f"purged {keys} idempotency key(s), {tokens} revoked token(s) and {deliveries} done event delivery(ies)")


@main.command()
@click.option("--concurrency", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker threads.")
def worker(concurrency: int) -> None:
    """Deliver events to the modules that handle them (any number, on any host; SIGTERM stops it gracefully)."""
    from app.events.worker import EventWorker

    app = _create_or_exit(_settings())
    try:
        EventWorker(app.events, concurrency=concurrency, signals=True).run()
    finally:
        app.module_manager.shutdown()


@main.group()
def events() -> None:
    """The event backbone."""


@events.command("relay")
@click.option("--drain", is_flag=True, help="Also deliver what is due now, in this process.")
def events_relay(drain: bool) -> None:
    """Stamp and hand out pending events once, and exit (a cron-friendly fallback to the workers)."""
    app = _create_or_exit(_settings())
    try:
        created = app.events.relay_now()
        if drain:
            app.events.deliver_pending()
    finally:
        app.module_manager.shutdown()
    handed = ", ".join(f"{name}: {count}" for name, count in sorted(created.items())) or "none"
    click.echo(f"relayed; new deliveries: {handed}")


@main.group()
def audit() -> None:
    """The audit trail: verify the chain (or an export), sign its head, purge old ranges."""


def _audit_trail(settings):
    from app import build_container

    container = build_container(settings)
    return container, container.audit_trail()


@audit.command("verify")
@click.option(
    "--file", "path", type=click.Path(exists=True, dir_okay=False), help="Verify this export instead of the database."
)
@click.option(
    "--checkpoint",
    help="Verify from a checkpoint (the JSON `audit checkpoint` printed); its signature is checked first.",
)
@click.option(
    "--from-sequence", type=click.IntRange(min=1), help="Verify from this trusted sequence (with --from-hash)."
)
@click.option("--from-hash", help="The trusted hash at --from-sequence.")
def audit_verify(path: str | None, checkpoint: str | None, from_sequence: int | None, from_hash: str | None) -> None:
    """Recompute the chain; exit 1 naming the first broken entry (altered, relinked or missing)."""
    import json

    from app.services.audit import export
    from app.services.errors import ValidationFailed

    if path:
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                verdict = export.verify_text(handle.read())
        except (export.UnreadableExport, UnicodeDecodeError) as exc:
            click.echo(f"not verified: {exc}")
            sys.exit(1)
        _verdict(verdict, f"file {path}")
        return
    settings = _settings()
    click.echo(_database_line(settings))
    container, trail = _audit_trail(settings)
    try:
        if checkpoint:
            try:
                signed = json.loads(checkpoint)
            except ValueError:
                signed = None
            if not trail.is_genuine(signed):
                click.echo("not verified: the checkpoint's signature does not match (not ours, or edited)")
                sys.exit(1)
            from_sequence, from_hash = signed["sequence"], signed["hash"]
        try:
            verdict = trail.verify(None, from_sequence, from_hash)
        except ValidationFailed as exc:
            raise click.UsageError("--from-sequence and --from-hash go together") from exc
    finally:
        container.database().dispose()
    _verdict(verdict, "database")


def _verdict(verdict: dict, what: str) -> None:
    head = verdict["head"]
    if verdict["verified"]:
        click.echo(f"{what}: verified {verdict['entries_checked']} entries; head {head['sequence']} {head['hash']}")
        return
    broken = verdict["first_broken"]
    click.echo(
        f"{what}: NOT verified: first broken entry {broken['sequence']} ({broken['reason']}); "
        f"{verdict['entries_checked']} entries verified before it, up to {head['sequence']} {head['hash']}"
    )
    sys.exit(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the chain's head signed with the secret key, and record it as an `audit.checkpoint`
    event (a webhook or a mail carries it off the machine). Keep it: `audit verify --checkpoint`."""
    import json

    container, trail = _audit_trail(_settings())
    try:
        signed = trail.checkpoint()
    finally:
        container.database().dispose()
    click.echo(json.dumps(signed, separators=(",", ":")))


@audit.command("purge")
@click.option("--before", "before", required=True, help="ISO 8601 date or time (UTC without an offset).")
def audit_purge(before: str) -> None:
    """Delete the oldest entries, whole ranges up to the first entry at or after BEFORE, leaving a
    `retention.purged` entry with the last deleted hash (the chain still verifies)."""
    import json
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(before)
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise click.BadParameter(f"not an ISO 8601 date or time: {before!r}", param_hint="--before") from None
    container, trail = _audit_trail(_settings())
    try:
        outcome = trail.purge(moment)
    finally:
        container.database().dispose()
    click.echo(json.dumps(outcome, separators=(",", ":")))


def _database_problem(container) -> str | None:
    """Why the configured database cannot serve (unreachable, schema not migrated), or None."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    database = container.database()
    try:
        return database.schema().advice
    except SQLAlchemyError as exc:
        cause = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()[0]
        return f"database unreachable: {cause}"
    finally:
        database.dispose()


@main.command()
def check() -> None:
    """Build the container and run every wiring check without serving; check the database too."""
    from app import build_container, create_app, plan_modules

    settings = _settings(warn=False)  # reported below instead
    click.echo(_database_line(settings))
    container = build_container(settings)
    problems = [*unknown_variables(), *filter(None, [_database_problem(container)])]
    plan = plan_modules(container, settings)
    findings = list(plan.findings)
    failed = []
    if not plan.errors:
        try:
            app = create_app(settings)
            findings = list(app.module_manager.findings)
            failed = [(n, s.reason) for n, s in app.module_manager.states.items() if s.status == "failed"]
            app.module_manager.shutdown()
        except WiringError as exc:
            findings = exc.findings
    for finding in findings:
        click.echo(str(finding))
    for name, reason in failed:
        click.echo(f"module {name} failed to initialize: {reason}")
    for problem in problems:
        click.echo(problem)
    if findings or failed or problems:
        summary = f"{len(findings)} finding(s), {len(failed)} failed module(s)"
        click.echo(summary + (f", {len(problems)} configuration problem(s)" if problems else ""))
        sys.exit(1)
    click.echo(f"ok: {len(plan.load_order)} modules, load order: {' -> '.join(plan.load_order)}")


@main.command()
@click.option(
    "--graph",
    "graph_format",
    type=click.Choice(["dot", "mermaid"]),
    is_flag=False,
    flag_value="dot",
    default=None,
    help="Print the dependency graph instead of the table (DOT when no format is given).",
)
def modules(graph_format: str | None) -> None:
    """Modules, their status, dependencies and load order."""
    from app import build_container
    from app.kernel.render import to_dot, to_mermaid, to_table

    settings = _settings()
    if graph_format:
        from app import plan_modules

        plan = plan_modules(build_container(settings), settings)
        click.echo(to_dot(plan) if graph_format == "dot" else to_mermaid(plan))
        return
    app = _create_or_exit(settings)
    click.echo(to_table(app.module_manager.status_report(include_reasons=True)))
    app.module_manager.shutdown()


def _create_or_exit(settings):
    from app import create_app

    try:
        return create_app(settings)
    except WiringError as exc:
        for finding in exc.findings:
            click.echo(str(finding), err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
