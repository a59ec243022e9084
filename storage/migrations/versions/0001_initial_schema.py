"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 13:11:34.427038
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("matter_name", sa.String(length=256), nullable=False),
        sa.Column("accepting_node", sa.String(length=16), nullable=False),
        sa.Column("accepting_hall", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_table(
        "events",
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("leg_node", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("actor_node", sa.String(length=16), nullable=False),
        sa.Column("actor_hall", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("signatures", sa.LargeBinary(), nullable=False),
        sa.Column("signed_by_key", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("event_hash"),
        sa.UniqueConstraint("case_id", "leg_node", "seq"),
    )
    op.create_index(op.f("ix_events_case_id"), "events", ["case_id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("dest_node", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_outbox_dest_node"), "outbox", ["dest_node"], unique=False)
    op.create_index(op.f("ix_outbox_state"), "outbox", ["state"], unique=False)
    op.create_table(
        "packets",
        sa.Column(
            "row_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("matter_code", sa.String(length=64), nullable=False),
        sa.Column("matter_name", sa.String(length=256), nullable=False),
        sa.Column("sender_node", sa.String(length=16), nullable=False),
        sa.Column("sender_hall", sa.String(length=128), nullable=False),
        sa.Column("local_hall", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("statement_type", sa.String(length=128), nullable=False),
        sa.Column("signatures", sa.LargeBinary(), nullable=False),
        sa.Column("signed_by_key", sa.String(length=64), nullable=False),
        sa.Column("form_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrap_key_id", sa.String(length=64), nullable=False),
        sa.Column("stored_digest", sa.String(length=64), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("row_id"),
        sa.UniqueConstraint("packet_id"),
    )
    op.create_index(op.f("ix_packets_case_id"), "packets", ["case_id"], unique=False)
    op.create_index(op.f("ix_packets_local_hall"), "packets", ["local_hall"], unique=False)
    op.create_table(
        "deliveries",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=16), nullable=False),
        sa.Column("hall_id", sa.String(length=128), nullable=False),
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.packet_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("packet_id", "node_id"),
    )
    op.create_table(
        "legs",
        sa.Column("case_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=16), nullable=False),
        sa.Column("hall_id", sa.String(length=128), nullable=False),
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("supplement_requests", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("head_seq", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id", "node_id"),
    )
    op.create_table(
        "packet_files",
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("file_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("media_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("segment_count", sa.BigInteger(), nullable=False),
        sa.Column("blob_key", sa.String(length=256), nullable=False),
        sa.Column("ciphertext_size", sa.BigInteger(), nullable=False),
        sa.Column("ciphertext_sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["packet_id"], ["packets.packet_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("packet_id", "file_index"),
    )


def downgrade() -> None:

    op.drop_table("packet_files")
    op.drop_table("legs")
    op.drop_table("deliveries")
    op.drop_index(op.f("ix_packets_local_hall"), table_name="packets")
    op.drop_index(op.f("ix_packets_case_id"), table_name="packets")
    op.drop_table("packets")
    op.drop_index(op.f("ix_outbox_state"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_dest_node"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_events_case_id"), table_name="events")
    op.drop_table("events")
    op.drop_table("cases")
