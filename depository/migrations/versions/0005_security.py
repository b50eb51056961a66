"""security: attempt throttling counters and the audit trail of authentication decisions

Revision ID: 0005_security
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_security"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "throttle_counters",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_throttle_counters")),
    )
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("decision", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    op.create_index("ix_security_events_subject_at", "security_events", ["subject", "at"])
    op.create_index("ix_security_events_ip_at", "security_events", ["ip", "at"])


def downgrade() -> None:
    op.drop_index("ix_security_events_ip_at", table_name="security_events")
    op.drop_index("ix_security_events_subject_at", table_name="security_events")
    op.drop_table("security_events")
    op.drop_table("throttle_counters")
