"""log integrity: checkpoint sequence and chain, integration halts, audit runs

Revision ID: 0004_log_integrity
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_log_integrity"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("chain", sa.LargeBinary(), nullable=True))
    # Existing checkpoints are numbered in size order (they were published in that order); their chain
    # stays NULL until `depository init` links them (it holds the chain key).
    op.execute("UPDATE checkpoints SET seq = (SELECT COUNT(*) FROM checkpoints c2 WHERE c2.size < checkpoints.size)")
    with op.batch_alter_table("checkpoints") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint(op.f("uq_checkpoints_seq"), ["seq"])
    op.create_table(
        "log_halts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.String(length=255), nullable=True),
        sa.Column("clear_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_halts")),
    )
    op.create_table(
        "log_audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_size", sa.BigInteger(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=True),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_audits")),
    )


def downgrade() -> None:
    op.drop_table("log_audits")
    op.drop_table("log_halts")
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_constraint(op.f("uq_checkpoints_seq"), type_="unique")
        batch.drop_column("chain")
        batch.drop_column("seq")
