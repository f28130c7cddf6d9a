"""Users gain an optional phone number (E.164), where SMS notifications go

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch:
        batch.add_column(sa.Column("phone", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch:
        batch.drop_column("phone")
