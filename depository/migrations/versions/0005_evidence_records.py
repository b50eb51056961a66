"""evidence records: one RFC 4998 EvidenceRecord per deposit, renewed in place

Revision ID: 0005_evidence_records
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_evidence_records"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_records",
        sa.Column("deposit_id", sa.String(length=64), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("hash_algorithm", sa.String(length=16), nullable=False),
        sa.Column("last_gen_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renew_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["deposit_id"], ["deposits.id"], name=op.f("fk_evidence_records_deposit_id_deposits")),
        sa.PrimaryKeyConstraint("deposit_id", name=op.f("pk_evidence_records")),
    )
    op.create_index("ix_evidence_records_renew_by", "evidence_records", ["renew_by"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_evidence_records_renew_by", table_name="evidence_records")
    op.drop_table("evidence_records")
