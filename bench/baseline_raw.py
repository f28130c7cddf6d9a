"""The floor of this stack: the same transfer in raw SQL on Flask + psycopg, no auth, no ORM.

Lock both wallet rows in a fixed order, two balance updates, one transaction row, two
entries, commit — what any correct implementation must at least do.
"""

from __future__ import annotations

import os
import threading
import uuid

import psycopg
from flask import Flask, jsonify, request

app = Flask(__name__)
_DSN = os.environ["BENCH_RAW_DSN"]
_local = threading.local()


def connection() -> psycopg.Connection:
    """One connection per worker thread (sync: one; gthread: several; gevent: one per client connection)."""
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(_DSN)
    return conn


@app.post("/transfer")
def transfer():
    body = request.get_json()
    src, dst, amount = body["from_user_id"], body["to_user_id"], int(body["amount"])
    conn = connection()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, id, balance FROM accounts WHERE user_id = ANY(%s) ORDER BY user_id FOR UPDATE",
            ([src, dst],),
        )
        rows = {user_id: (account_id, balance) for user_id, account_id, balance in cur.fetchall()}
        if rows[src][1] < amount:
            return jsonify({"error": {"code": "insufficient_funds"}}), 409
        cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, rows[src][0]))
        cur.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s", (amount, rows[dst][0]))
        tx_id = str(uuid.uuid4())
        cur.execute(
            "INSERT INTO transactions (id, type, amount, from_user_id, to_user_id, created_at) "
            "VALUES (%s, 'transfer', %s, %s, %s, now()) RETURNING created_at",
            (tx_id, amount, src, dst),
        )
        ((created_at,),) = cur.fetchall()  # RETURNING: one row
        cur.execute(
            "INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at, balance_after) "
            "VALUES (%s, %s, %s, 'transfer', now(), %s), (%s, %s, %s, 'transfer', now(), %s)",
            (tx_id, rows[src][0], -amount, rows[src][1] - amount, tx_id, rows[dst][0], amount, rows[dst][1] + amount),
        )
    return jsonify(
        {
            "id": tx_id,
            "type": "transfer",
            "amount": amount,
            "from_user_id": src,
            "to_user_id": dst,
            "description": None,
            "created_at": created_at.isoformat(),
            "reverses": None,
            "reversed_by": None,
        }
    ), 201
