"""seals and e-certificates

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 13:35:09.283701
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ecerts",
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("seal_id", sa.String(length=64), nullable=False),
        sa.Column("type_code", sa.String(length=16), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("document_name", sa.String(length=512), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("packet_id", sa.String(length=36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("identifier"),
        sa.UniqueConstraint("type_code", "serial"),
    )
    op.create_index(op.f("ix_ecerts_seal_id"), "ecerts", ["seal_id"], unique=False)
    op.create_table(
        "seals",
        sa.Column("seal_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("org_uscc", sa.String(length=18), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("image_png", sa.LargeBinary(), nullable=False),
        sa.Column("key_ref", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seal_id"),
    )


def downgrade() -> None:

    op.drop_table("seals")
    op.drop_index(op.f("ix_ecerts_seal_id"), table_name="ecerts")
    op.drop_table("ecerts")
