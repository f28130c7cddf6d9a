"""PostgreSQL: credit_post(), a whole posting in one statement

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 13:30:00

The posting as one call: the wallets' guarded updates in user-id order, the transaction,
its entries, the idempotency record and the `transaction.posted` event with each wallet's
balance after. app.infrastructure.posting.FunctionWriter calls it; docs/ledger.md says
why (one round trip, and with nothing else in the unit no BEGIN or COMMIT either). A
refused guard raises (check_violation, "posting refused"), so nothing of the posting stays.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION credit_post(
    tx_id varchar, tx_type varchar, tx_amount bigint, tx_from_user_id varchar,
    tx_to_user_id varchar, tx_description varchar, tx_reverses varchar,
    tx_created_by varchar, tx_created_at timestamptz,
    leg_user_ids varchar[], leg_account_ids varchar[], leg_amounts bigint[], leg_active boolean[],
    key_user_id varchar, key_key varchar, key_request_hash varchar, key_status_code integer,
    key_response_body text, key_created_at timestamptz, key_expires_at timestamptz,
    ev_event_id varchar, ev_type varchar, ev_occurred_at timestamptz, ev_actor_type varchar,
    ev_actor_id varchar, ev_request_id varchar, ev_remote_addr varchar, ev_target_type varchar,
    ev_target_id varchar, ev_data_head text
) RETURNS TABLE (user_id varchar, balance bigint, version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    leg integer;
    wallet record;
    account_of jsonb := '{}';  -- user id -> wallet id
    balance_of jsonb := '{}';  -- user id -> balance after its (last) leg
BEGIN
    -- Wallet rows in user-id order (byte order, as Python sorts them: every writer locks
    -- in the same order, so postings never deadlock), each update guarded: a debit only
    -- if the balance stays >= 0, an `active` leg only if its user is active.
    FOR leg IN
        SELECT i FROM generate_subscripts(leg_user_ids, 1) AS i
        WHERE leg_user_ids[i] IS NOT NULL
        ORDER BY leg_user_ids[i] COLLATE "C", i
    LOOP
        UPDATE accounts AS a
        SET balance = a.balance + leg_amounts[leg], version = a.version + 1, updated_at = tx_created_at
        WHERE a.user_id = leg_user_ids[leg] AND a.kind = 'user'
          AND (leg_amounts[leg] > 0 OR a.balance >= -leg_amounts[leg])
          AND (NOT leg_active[leg] OR EXISTS (
              SELECT 1 FROM users AS u WHERE u.id = a.user_id AND u.is_active IS TRUE))
        RETURNING a.id, a.balance, a.version INTO wallet;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'posting refused' USING ERRCODE = 'check_violation';
        END IF;
        account_of := account_of || jsonb_build_object(leg_user_ids[leg], wallet.id);
        balance_of := balance_of || jsonb_build_object(leg_user_ids[leg], wallet.balance);
        user_id := leg_user_ids[leg];
        balance := wallet.balance;
        version := wallet.version;
        RETURN NEXT;
    END LOOP;

    INSERT INTO transactions (id, type, amount, from_user_id, to_user_id, description, reverses,
                              created_by, created_at)
    VALUES (tx_id, tx_type, tx_amount, tx_from_user_id, tx_to_user_id, tx_description, tx_reverses,
            tx_created_by, tx_created_at);

    INSERT INTO ledger_entries (transaction_id, account_id, amount, tx_type, created_at, balance_after)
    SELECT tx_id,
           coalesce(account_of ->> leg_user_ids[i], leg_account_ids[i]),
           leg_amounts[i], tx_type, tx_created_at,
           (balance_of ->> leg_user_ids[i])::bigint
    FROM generate_subscripts(leg_amounts, 1) AS i
    ORDER BY i;

    IF key_user_id IS NOT NULL THEN
        INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response_body,
                                      created_at, expires_at)
        VALUES (key_user_id, key_key, key_request_hash, key_status_code, key_response_body,
                key_created_at, key_expires_at);
    END IF;

    IF ev_event_id IS NOT NULL THEN
        INSERT INTO outbox_events (event_id, sequence, type, occurred_at, actor_type, actor_id,
                                   request_id, remote_addr, target_type, target_id, data)
        VALUES (ev_event_id, NULL, ev_type, ev_occurred_at, ev_actor_type, ev_actor_id,
                ev_request_id, ev_remote_addr, ev_target_type, ev_target_id,
                ev_data_head || balance_of::text || '}');
    END IF;
END
$$
"""

SIGNATURE = (
    "credit_post(varchar, varchar, bigint, varchar, varchar, varchar, varchar, varchar, timestamptz, "
    "varchar[], varchar[], bigint[], boolean[], varchar, varchar, varchar, integer, text, timestamptz, "
    "timestamptz, varchar, varchar, timestamptz, varchar, varchar, varchar, varchar, varchar, varchar, text)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {SIGNATURE}")
