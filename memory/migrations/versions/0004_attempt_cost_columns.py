"""Attempt cost columns and covering indexes, so status and resume stay fast at 1M attempts.

`device_s` (compile + child-process seconds) and `llm_dollars` were read out of every packet's
JSON (9 s at 1M attempts, bench/db_scale.py); as columns they are one SUM. Two indexes serve the
ranking (best speedup per run) and the verdict/failure counts without touching the packets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("device_s", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("llm_dollars", sa.Float(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE attempts SET "
                   "device_s = COALESCE((packet->'cost'->>'device_s')::float, 0) "
                   "+ COALESCE((packet->'cost'->>'compile_s')::float, 0), "
                   "llm_dollars = COALESCE((packet->'cost'->>'llm_dollars')::float, 0)")
    else:
        op.execute("UPDATE attempts SET "
                   "device_s = COALESCE(json_extract(packet, '$.cost.device_s'), 0) "
                   "+ COALESCE(json_extract(packet, '$.cost.compile_s'), 0), "
                   "llm_dollars = COALESCE(json_extract(packet, '$.cost.llm_dollars'), 0)")
    op.create_index(op.f("ix_attempts_run_id_verdict_speedup_eager"), "attempts",
                    ["run_id", "verdict", "speedup_eager"])
    op.create_index(op.f("ix_attempts_run_id_verdict_failure_class_compiled_verified"), "attempts",
                    ["run_id", "verdict", "failure_class", "compiled", "verified"])


def downgrade() -> None:
    op.drop_index(op.f("ix_attempts_run_id_verdict_failure_class_compiled_verified"), table_name="attempts")
    op.drop_index(op.f("ix_attempts_run_id_verdict_speedup_eager"), table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("llm_dollars")
        batch.drop_column("device_s")
