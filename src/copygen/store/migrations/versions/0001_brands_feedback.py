"""Brands, the responses feedback refers to, and feedback.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "brands",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("voice", sa.Text(), nullable=False),
        sa.Column("tone", sa.String(60), nullable=False),
        sa.Column("audience", sa.String(200), nullable=False),
        sa.Column("preferred_terms", sa.JSON(), nullable=False),
        sa.Column("forbidden_terms", sa.JSON(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("example_count", sa.Integer(), nullable=False),
        sa.Column("auto_learn", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_brands_tenant_id", "brands", ["tenant", "id"])
    op.create_table(
        "responses",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("brand_id", sa.String(40), nullable=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_responses_expires_at", "responses", ["expires_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(200), nullable=False),
        sa.Column("copy_id", sa.String(40), nullable=False),
        sa.Column("brand_id", sa.String(40), nullable=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        sa.Column("variant_index", sa.Integer(), nullable=False),
        sa.Column("variant_text", sa.Text(), nullable=False),
        sa.Column("others", sa.JSON(), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_feedback_tenant_id", "feedback", ["tenant", "id"])
    op.create_index("ix_feedback_brand_id", "feedback", ["brand_id", "id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("responses")
    op.drop_table("brands")
