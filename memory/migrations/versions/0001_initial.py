"""Initial schema: workloads, runs, nodes, attempts, baselines.

Written by hand to match memory/models.py (tests/memory/test_store.py checks that the
migrated database and the models agree). Constraint and index names are spelled out in
full (op.f) so they are the same on SQLite and PostgreSQL and later migrations can use them.

Revision ID: 0001
Revises:
Create Date: 2026-05-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workloads",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", "fingerprint", name=op.f("pk_workloads")),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workload", sa.String(200), nullable=False),
        sa.Column("workload_fingerprint", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
        sa.ForeignKeyConstraint(["workload", "workload_fingerprint"],
                                ["workloads.name", "workloads.fingerprint"],
                                name=op.f("fk_runs_workload_workloads")),
        sa.CheckConstraint("status IN ('running', 'finished', 'failed', 'interrupted')",
                           name=op.f("ck_runs_status")),
    )
    op.create_index(op.f("ix_runs_workload"), "runs", ["workload"])
    op.create_table(
        "nodes",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(64), nullable=True),
        sa.Column("family", sa.String(100), nullable=False),
        sa.Column("move", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("expected_gain", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("stagnation", sa.Integer(), nullable=False),
        sa.Column("best_speedup", sa.Float(), nullable=True),
        sa.Column("best_attempt_id", sa.String(64), nullable=True),
        sa.Column("best_params", sa.JSON(), nullable=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "id", name=op.f("pk_nodes")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_nodes_run_id_runs")),
    )
    op.create_table(
        "attempts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("source_hash", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("failure_class", sa.String(32), nullable=True),
        sa.Column("failure_message", sa.Text(), nullable=False),
        sa.Column("speedup_eager", sa.Float(), nullable=True),
        sa.Column("speedup_naive", sa.Float(), nullable=True),
        sa.Column("median_s", sa.Float(), nullable=True),
        sa.Column("compiled", sa.Boolean(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("wall_s", sa.Float(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("packet", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_attempts_run_id_runs")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_attempts_run_id_seq")),
        sa.CheckConstraint("verdict IN ('accepted', 'rejected')", name=op.f("ck_attempts_verdict")),
    )
    op.create_index(op.f("ix_attempts_run_id_node_id"), "attempts", ["run_id", "node_id"])
    op.create_index(op.f("ix_attempts_run_id_verdict"), "attempts", ["run_id", "verdict"])
    op.create_index(op.f("ix_attempts_run_id_source_hash"), "attempts", ["run_id", "source_hash"])
    op.create_table(
        "baselines",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("shape", sa.String(100), nullable=False),
        sa.Column("timing", sa.JSON(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", "shape", name=op.f("pk_baselines")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_baselines_run_id_runs")),
    )


def downgrade() -> None:
    op.drop_table("baselines")
    op.drop_index(op.f("ix_attempts_run_id_source_hash"), table_name="attempts")
    op.drop_index(op.f("ix_attempts_run_id_verdict"), table_name="attempts")
    op.drop_index(op.f("ix_attempts_run_id_node_id"), table_name="attempts")
    op.drop_table("attempts")
    op.drop_table("nodes")
    op.drop_index(op.f("ix_runs_workload"), table_name="runs")
    op.drop_table("runs")
    op.drop_table("workloads")
