"""A number's calls in the report's order: ``id`` ends both number indexes of calls

Reports › Calls pages newest first on (started_at, id). Filtered by a number,
PostgreSQL reads the number's calls from ix_calls_tenant_from_number and
_to_number (``portal/reports/query.py``, ``_by_number``); ending in started_at,
those gave the order only up to ties, so it sorted every call of the number
before it could stop at a page (a user's 55,000 at 10 M calls: 50 ms, and
1.4 s for a listener, each call probed for her team). With ``id`` they give
the page's order and the walk stops after one page. SQLite plans are
unchanged (it uses them to look numbers up).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 13:00:00
"""
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_calls_tenant_from_number': 'from_number',
    'ix_calls_tenant_to_number': 'to_number',
}


def upgrade() -> None:
    for name, number in INDEXES.items():
        op.drop_index(name, table_name='calls')
        op.create_index(name, 'calls', ['tenant_id', number, 'started_at', 'id'], unique=False)


def downgrade() -> None:
    for name, number in INDEXES.items():
        op.drop_index(name, table_name='calls')
        op.create_index(name, 'calls', ['tenant_id', number, 'started_at'], unique=False)
