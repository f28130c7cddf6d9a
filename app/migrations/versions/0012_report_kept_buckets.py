"""reporting_module: summary buckets kept between requests, and the UTC days' versions that say when one is stale

Tables as app/infrastructure/tables_reporting.py declares them (ReportDayVersion,
ReportKeptBucket). Both start empty: nothing is kept yet, and a day without a version row
reads as version 0, which the handler's first change to that day's aggregates raises.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_day_versions",
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_report_day_versions"),
    )
    op.create_table(
        "report_kept_buckets",
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kept_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("start", "until", name="pk_report_kept_buckets"),
    )


def downgrade() -> None:
    op.drop_table("report_kept_buckets")
    op.drop_table("report_day_versions")
