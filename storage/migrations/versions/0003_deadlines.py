"""deadlines: calendar, matter catalogue, case clocks and cards

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("year"),
    )
    op.create_table(
        "matters",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "matter_versions",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("code", "version"),
    )
    op.create_table(
        "case_clocks",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("leg_node", sa.String(length=16), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("matter_version", sa.Integer(), nullable=False),
        sa.Column("handling_hall", sa.String(length=128), nullable=False),
        sa.Column("accepting_node", sa.String(length=16), nullable=False),
        sa.Column("accepting_hall", sa.String(length=128), nullable=False),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("legal_days", sa.Integer(), nullable=False),
        sa.Column("exempt", sa.Boolean(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("accepted_at", _TS, nullable=True),
        sa.Column("pauses", sa.Text(), nullable=False),
        sa.Column("deferred", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("cards", sa.String(length=128), nullable=False),
        sa.Column("due_at", _TS, nullable=True),
        sa.Column("legal_due_at", _TS, nullable=True),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("wake_at", _TS, nullable=True),
        sa.Column("alert", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "leg_node"),
    )
    op.create_index("ix_case_clocks_wake_at", "case_clocks", ["wake_at"], unique=False)
    op.create_table(
        "case_cards",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("leg_node", sa.String(length=16), nullable=False),
        sa.Column("card", sa.String(length=24), nullable=False),
        sa.Column("due_at", _TS, nullable=False),
        sa.Column("issued_at", _TS, nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "leg_node", "card"),
    )
    op.create_table(
        "default_notices",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("leg_node", sa.String(length=16), nullable=False),
        sa.Column("ecert_id", sa.String(length=128), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("decided_at", _TS, nullable=False),
        sa.Column("result_packet", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "leg_node"),
    )


def downgrade() -> None:
    op.drop_table("default_notices")
    op.drop_table("case_cards")
    op.drop_index("ix_case_clocks_wake_at", table_name="case_clocks")
    op.drop_table("case_clocks")
    op.drop_table("matter_versions")
    op.drop_table("matters")
    op.drop_table("calendar_years")
    op.drop_table("calendar_days")
