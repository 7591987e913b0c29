"""Silent coaching: the tenant option "supervisor in the recording"

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 03:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('supervisor_in_recording', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('supervisor_in_recording')
