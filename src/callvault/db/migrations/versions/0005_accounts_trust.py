"""accounts: token expiry and revocation, user deactivation, atomic login throttle

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table, PostgreSQL alters it in place
    with op.batch_alter_table('users') as batch:
        batch.add_column(
            sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table('api_tokens') as batch:
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('created_by', sa.String(length=200), nullable=True))
    op.create_table(
        'login_throttle',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('login', sa.String(length=200), nullable=False),
        sa.Column('remote_addr', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'login', 'remote_addr'),
    )


def downgrade() -> None:
    op.drop_table('login_throttle')
    with op.batch_alter_table('api_tokens') as batch:
        batch.drop_column('created_by')
        batch.drop_column('expires_at')
        batch.drop_column('revoked_at')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('active')
