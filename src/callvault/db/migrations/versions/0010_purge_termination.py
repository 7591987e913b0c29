"""purge and termination: indexes for the purge and the quota, termination requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the purge walks only audio not yet deleted (a partial index: purged rows drop out)
    op.create_index(
        'ix_recordings_audio_expires',
        'recordings',
        ['expires_at'],
        sqlite_where=sa.text('audio_deleted_at IS NULL'),
        postgresql_where=sa.text('audio_deleted_at IS NULL'),
    )
    # the quota purge deletes a tenant's oldest recordings first
    op.create_index(
        'ix_recordings_tenant_started', 'recordings', ['tenant_id', 'started_at', 'id']
    )
    op.create_table(
        'termination_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('requested_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_index(
        'ix_termination_requests_tenant_id', 'termination_requests', ['tenant_id']
    )


def downgrade() -> None:
    op.drop_index('ix_termination_requests_tenant_id', table_name='termination_requests')
    op.drop_table('termination_requests')
    op.drop_index('ix_recordings_tenant_started', table_name='recordings')
    op.drop_index('ix_recordings_audio_expires', table_name='recordings')
