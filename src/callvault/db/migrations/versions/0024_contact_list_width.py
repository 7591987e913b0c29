"""Contact lists fit their names: ``user_contacts.list`` is VARCHAR(16), not 8

"blacklist" and "whitelist" have nine characters. SQLite ignores a VARCHAR's
length, so the short column went unnoticed there; PostgreSQL refused every
contact (a server error) until the API suite ran on it (issue 13).

PostgreSQL only: SQLite needs no change, and batch mode would rebuild the
table and drop 0023's directory triggers with it.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.alter_column('user_contacts', 'list', type_=sa.String(16),
                        existing_type=sa.String(8), existing_nullable=False)


def downgrade() -> None:
    pass  # the wider column stays: narrowing it would refuse the lists' own names
