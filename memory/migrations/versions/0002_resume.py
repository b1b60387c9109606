"""Resume support: dispatched-but-unfinished attempts, and the run's active time.

`dispatches` holds one row per attempt handed to a hardware worker and not yet recorded; the row
is deleted in the same transaction that records the attempt, so after any crash the rows left
are exactly the attempts to run again. `runs.elapsed_s` is the time the run has been searching,
summed over its sessions, so a resumed run's time budget counts only what is left.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:   # batch: SQLite cannot ALTER ... ADD with constraints
        batch.add_column(sa.Column("elapsed_s", sa.Float(), nullable=False, server_default="0"))
    op.create_table(
        "dispatches",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("proposal", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_dispatches_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "id", name=op.f("pk_dispatches")),
    )


def downgrade() -> None:
    op.drop_table("dispatches")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("elapsed_s")
