"""index on lower(label text) for the calls report's label filter

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 05:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_recording_labels_tenant_lower_text',
        'recording_labels',
        ['tenant_id', sa.text('lower(text)'), 'recording_id'],
    )


def downgrade() -> None:
    op.drop_index('ix_recording_labels_tenant_lower_text', table_name='recording_labels')
