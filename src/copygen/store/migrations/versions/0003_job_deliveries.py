"""A job's webhook delivery lives with the job (its id, attempts, next due time), so a
restarted replica resumes a pending delivery.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("delivery_id", sa.String(40), nullable=True))
        batch.add_column(
            sa.Column("delivery_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("delivery_due", sa.DateTime(), nullable=True))
    op.create_index("ix_jobs_delivery_due", "jobs", ["delivery_due"])


def downgrade() -> None:
    op.drop_index("ix_jobs_delivery_due", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("delivery_due")
        batch.drop_column("delivery_attempts")
        batch.drop_column("delivery_id")
