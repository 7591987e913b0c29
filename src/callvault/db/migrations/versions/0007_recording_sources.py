"""recording sources registered by the operator, with limits

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recording_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('networks', sa.JSON(), nullable=False),
    sa.Column('fingerprints', sa.JSON(), nullable=False),
    sa.Column('require_tls', sa.Boolean(), nullable=False),
    sa.Column('require_srtp', sa.Boolean(), nullable=False),
    sa.Column('max_calls', sa.Integer(), nullable=False),
    sa.Column('max_streams', sa.Integer(), nullable=False),
    sa.Column('max_media_lines', sa.Integer(), nullable=False),
    sa.Column('max_session_expires_s', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('recording_source_tenants',
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['recording_sources.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_id', 'tenant_id')
    )
    with op.batch_alter_table('recording_source_tenants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recording_source_tenants_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recording_source_tenants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recording_source_tenants_tenant_id'))

    op.drop_table('recording_source_tenants')
    op.drop_table('recording_sources')
