"""tenants: operator enablement of recording, listening, coaching; number blocks

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00

Tenants that accepted the legal notice before this revision were recording;
they keep recording: their ``recording`` enablement is set with the reference
``before-0006`` so that the operator can find and confirm them (SPEC 8).
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

GRANDFATHERED = "before-0006"


def upgrade() -> None:
    op.create_table('tenant_number_blocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prefix')
    )
    with op.batch_alter_table('tenant_number_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenant_number_blocks_tenant_id'), ['tenant_id'], unique=False)

    enablements = op.create_table('tenant_enablements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('feature', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('enabled_by', sa.String(length=200), nullable=True),
    sa.Column('enabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_by', sa.String(length=200), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'feature')
    )
    with op.batch_alter_table('tenant_enablements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tenant_enablements_tenant_id'), ['tenant_id'], unique=False)

    connection = op.get_bind()
    accepted = connection.execute(
        sa.text("SELECT DISTINCT tenant_id FROM legal_acceptances")
    ).scalars().all()
    if accepted:
        now = datetime.now(UTC)
        op.bulk_insert(enablements, [
            {
                'tenant_id': tenant_id,
                'feature': 'recording',
                'enabled': True,
                'reference': GRANDFATHERED,
                'enabled_by': 'migration:0006',
                'enabled_at': now,
            }
            for tenant_id in accepted
        ])


def downgrade() -> None:
    with op.batch_alter_table('tenant_enablements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenant_enablements_tenant_id'))
    op.drop_table('tenant_enablements')
    with op.batch_alter_table('tenant_number_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tenant_number_blocks_tenant_id'))
    op.drop_table('tenant_number_blocks')
