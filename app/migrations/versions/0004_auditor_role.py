"""The auditor role: users.role may be 'auditor' (reads everything an admin reads, changes
nothing but its own password)

Only the CHECK widens; the column (String(10)) already holds it. Batch mode so SQLite, which
cannot alter a constraint, rebuilds the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 03:30:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _role_check(roles: str) -> None:
    with op.batch_alter_table("users", schema=None) as batch:
        batch.drop_constraint(op.f("ck_users_role"), type_="check")
        batch.create_check_constraint(op.f("ck_users_role"), f"role IN ({roles})")


def upgrade() -> None:
    _role_check("'user', 'admin', 'auditor'")


def downgrade() -> None:
    op.execute("UPDATE users SET role = 'user' WHERE role = 'auditor'")
    _role_check("'user', 'admin'")
