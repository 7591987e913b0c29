"""jobs, plans, legal holds, deletion receipts, exports; tenant time zone; audio state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 00:00:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

PLANS = [  # name, min, max, default, minute quota (SPEC 4; the manuals' plans)
    ('standard', 7, 180, 7, None),
    ('30-120', 30, 120, 30, None),
    ('fixed-180', 180, 180, 180, None),
    ('fixed-365', 365, 365, 365, None),
    ('minutes-100000', 30, 90, 30, 100000),
]


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('locked_by', sa.String(length=100), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key'),
    )
    op.create_index('ix_jobs_state_run_after', 'jobs', ['state', 'run_after'])
    op.create_index('ix_jobs_tenant_id', 'jobs', ['tenant_id'])

    plans = op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('retention_min_days', sa.Integer(), nullable=False),
    sa.Column('retention_max_days', sa.Integer(), nullable=False),
    sa.Column('retention_default_days', sa.Integer(), nullable=False),
    sa.Column('minute_quota', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name'),
    )
    now = datetime.now(UTC)
    op.bulk_insert(plans, [
        {'name': n, 'retention_min_days': lo, 'retention_max_days': hi,
         'retention_default_days': d, 'minute_quota': q, 'created_at': now,
         'created_by': 'migration'}
        for n, lo, hi, d, q in PLANS
    ])

    op.create_table('legal_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('recording_id', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('placed_by', sa.String(length=200), nullable=False),
    sa.Column('placed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lifted_by', sa.String(length=200), nullable=True),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_legal_holds_tenant_id', 'legal_holds', ['tenant_id'])
    op.create_index('ix_legal_holds_recording_id', 'legal_holds', ['recording_id'])

    op.create_table('deletion_receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('tenant_name', sa.String(length=200), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('blob_key', sa.String(length=255), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_deletion_receipts_tenant_id', 'deletion_receipts', ['tenant_id'])

    op.create_table('exports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('user_ids', sa.JSON(), nullable=True),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('requested_by_actor', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('recordings', sa.Integer(), nullable=False),
    sa.Column('bytes_total', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ready_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['requested_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_exports_tenant_id', 'exports', ['tenant_id'])
    op.create_table('export_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('export_id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('blob_key', sa.String(length=255), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('recordings', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['export_id'], ['exports.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_export_files_export_id', 'export_files', ['export_id'])

    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('timezone', sa.String(length=64), nullable=False,
                                   server_default='Europe/Amsterdam'))
        batch.add_column(sa.Column('store_in_portal', sa.Boolean(), nullable=False,
                                   server_default=sa.true()))
    with op.batch_alter_table('recordings') as batch:
        batch.add_column(sa.Column('audio_deleted_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('audio_deleted_reason', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('mailed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('mail_error', sa.String(length=500), nullable=True))
    op.create_index('ix_recordings_expires_at', 'recordings', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_recordings_expires_at', table_name='recordings')
    with op.batch_alter_table('recordings') as batch:
        for column in ('mail_error', 'mailed_at', 'audio_deleted_reason', 'audio_deleted_at'):
            batch.drop_column(column)
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('store_in_portal')
        batch.drop_column('timezone')
    for table in ('export_files', 'exports', 'deletion_receipts', 'legal_holds', 'plans', 'jobs'):
        op.drop_table(table)
