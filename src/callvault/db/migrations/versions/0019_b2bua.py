"""B2BUA: source kinds, call routes, announcement settings and prompts

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recording_sources') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=8), nullable=False,
                                   server_default='siprec'))
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('announce_start', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column('announce_stop', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column('announce_after_transfer', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('hide_code_from_other', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_table('call_routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['recording_sources.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_id', 'prefix'),
    )
    op.create_index('ix_call_routes_tenant_id', 'call_routes', ['tenant_id'])
    op.create_index('ix_call_routes_source_id', 'call_routes', ['source_id'])
    op.create_table('announcement_prompts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('blob_key', sa.String(length=255), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('original_name', sa.String(length=200), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'kind'),
    )
    op.create_index('ix_announcement_prompts_tenant_id', 'announcement_prompts', ['tenant_id'])


def downgrade() -> None:
    op.drop_index('ix_announcement_prompts_tenant_id', table_name='announcement_prompts')
    op.drop_table('announcement_prompts')
    op.drop_index('ix_call_routes_source_id', table_name='call_routes')
    op.drop_index('ix_call_routes_tenant_id', table_name='call_routes')
    op.drop_table('call_routes')
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('hide_code_from_other')
        batch.drop_column('announce_after_transfer')
        batch.drop_column('announce_stop')
        batch.drop_column('announce_start')
    with op.batch_alter_table('recording_sources') as batch:
        batch.drop_column('kind')
