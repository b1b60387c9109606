"""Nodes record the moves of their parent's kernel that their move replaced.

A move applied to a kernel that already embodies another on the same axes (OpenMP over tiles on
an OpenMP-over-rows kernel) gains relative to that move, not to the naive kernel: the planner
prices it so, and neither its in-run gains nor cross-run knowledge count it as the move's own
evidence. Resume reads it back with the tree.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("displaces", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("displaces")
