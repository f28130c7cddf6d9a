"""The nginx configuration `credit-system nginx-config` prints: a buffering proxy in front of `serve`.

`serve`'s sync workers read a request with the whole process, so a client that sends its
headers slowly holds a worker until gunicorn kills it (30 s): a few such connections stop
the server. nginx reads every request whole (its headers within `client_header_timeout`,
its body into a buffer) on its event loop before it opens a connection to `serve`, and
takes the response as fast as `serve` writes it, so a slow client costs nginx a few
kilobytes and no worker. tests/e2e/test_slow_clients.py runs this file in a real nginx.
"""

from __future__ import annotations

from app.http.wire_errors import error_body

# Refusals nginx makes itself (the request never reached `serve`), answered with the API's
# error body: (nginx's status, the status and reason the client gets). 494 is nginx's
# "request header too large"; 404 is one of the locations below asked for by a client; 502
# and 504 mean `serve` is down, restarting or stuck.
NGINX_ERRORS = (
    (400, 400, "Bad Request"),
    (404, 404, "Not Found"),
    (413, 413, "Payload Too Large"),
    (414, 414, "URI Too Long"),
    (494, 431, "Request Header Fields Too Large"),
    (502, 503, "Service Unavailable"),
    (504, 503, "Service Unavailable"),
)
UNAVAILABLE_MESSAGE = "the service is unavailable; retry shortly"
# Internal locations (a client asking for them gets the app's 404): a named location cannot
# take a request whose line nginx could not read (414).
ERROR_PATH = "/.nginx-error/"


def nginx_config(upstream: str, listen: str, server_name: str = "_") -> str:
    """An nginx file for the `http` context (e.g. /etc/nginx/conf.d/credit-system.conf)."""
    pages = "\n".join(f"    error_page {status} ={answer} {ERROR_PATH}{status};" for status, answer, _ in NGINX_ERRORS)
    locations = "\n".join(_error_location(*error) for error in NGINX_ERRORS)
    return f"""\
# credit-system behind nginx, printed by `credit-system nginx-config --upstream {upstream} --listen {listen}`.
# nginx reads each request whole before it connects to `serve`, and each response as fast as
# `serve` writes it: slow clients cost nginx a few kilobytes, never a gunicorn worker.
# Run `serve` on loopback (or an address only this proxy reaches): it trusts X-Forwarded-For
# only from the addresses in `serve --forwarded-allow-ips` (default 127.0.0.1,::1).

upstream credit_system {{
    server {upstream};
}}

server {{
    listen {listen};
    server_name {server_name};
    server_tokens off;                 # no version banner

    client_header_timeout 10s;         # the whole header block, or the connection is closed
    client_body_timeout 10s;           # between two reads of the body
    send_timeout 10s;                  # between two writes of the response
    keepalive_timeout 5s;
    client_max_body_size 1m;           # above serve's own limit (64 KB), which answers 413 itself
    client_body_buffer_size 128k;      # bodies up to serve's limit stay in memory

    proxy_request_buffering on;        # the whole body before serve sees the request (the default)
    proxy_buffering on;                # the whole response off serve's worker, however slow the reader
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;   # the client's address: per-address limits count it
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout 5s;
    proxy_read_timeout 60s;            # above serve's worker timeout (30 s)

    location / {{
        proxy_pass http://credit_system;
    }}

{pages}
{locations}
}}
"""


def _error_location(status: int, answer: int, reason: str) -> str:
    message = UNAVAILABLE_MESSAGE if answer == 503 else ""
    body = error_body(answer, message or reason).replace("'", "\\'")
    return f"""\
    location = {ERROR_PATH}{status} {{
        internal;
        default_type application/json;
        add_header X-Content-Type-Options nosniff always;
        return {answer} '{body}';
    }}"""
