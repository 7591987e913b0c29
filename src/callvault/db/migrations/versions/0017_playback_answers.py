"""Playback answers: server secrets (the answer tokens' HMAC key)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 01:00:00
"""
import base64
import secrets
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('server_secrets',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name'),
    )
    # created here, once, so that no two processes race to make it (answers.py falls back)
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()
    op.bulk_insert(table, [
        {'name': 'playback.action', 'value': key, 'created_at': datetime.now(UTC)},
    ])


def downgrade() -> None:
    op.drop_table('server_secrets')
