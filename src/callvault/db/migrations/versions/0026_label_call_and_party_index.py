"""A label's call and its start (``recording_labels.call_id``, ``started_at``) and
a covering index of a call's parties

Reports › Calls filtered by a label wants the label's calls, newest first.
Labels named their recording only, so the filter looked each labelled
recording up for its call: at 10 M calls, 25,000 look-ups of recordings for one
label (issue 13, bench/calls_report.py), and then walked the calls in time
order to find the labelled ones (a listener's: 411,000 calls for a page).
``call_id`` is the recording's call and ``started_at`` that call's start,
copied (neither ever changes), backfilled here and NOT NULL after;
``ix_recording_labels_tenant_lower_text`` becomes (tenant_id, lower(text),
started_at, call_id, recording_id) and includes ``text`` (without the column
PostgreSQL will not answer from an index on an expression alone): read
backwards it gives a label's calls newest first, and it still gives a label's
recordings (the recordings list). ``ix_recording_labels_call_id`` serves the
per-call check of a walk and the cascade from calls.

``ix_call_parties_call_id`` becomes (call_id, user_id), including tenant_id on
PostgreSQL: the report walks calls in time order and checks each against a
listener's team; with the user and the tenant in the index that check reads no
table rows there.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02 12:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

FK = 'recording_labels_call_id_fkey'  # PostgreSQL's own name for it; SQLite needs one


def upgrade() -> None:
    # first: SQLite's batch copy of the table cannot carry an index on an expression
    op.drop_index('ix_recording_labels_tenant_lower_text', table_name='recording_labels')
    with op.batch_alter_table('recording_labels') as batch_op:
        batch_op.add_column(
            sa.Column(
                'call_id',
                sa.String(length=32),
                sa.ForeignKey('calls.id', ondelete='CASCADE', name=FK),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(
        'UPDATE recording_labels SET call_id = (SELECT recordings.call_id FROM recordings'
        ' WHERE recordings.id = recording_labels.recording_id)'
    )
    op.execute(
        'UPDATE recording_labels SET started_at = (SELECT calls.started_at FROM calls'
        ' WHERE calls.id = recording_labels.call_id)'
    )
    with op.batch_alter_table('recording_labels') as batch_op:
        batch_op.alter_column('call_id', existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column(
            'started_at', existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.create_index('ix_recording_labels_call_id', ['call_id'], unique=False)
    op.create_index(
        'ix_recording_labels_tenant_lower_text',
        'recording_labels',
        ['tenant_id', sa.text('lower(text)'), 'started_at', 'call_id', 'recording_id'],
        postgresql_include=['text'],  # so that PostgreSQL may read the index alone
    )
    op.drop_index('ix_call_parties_call_id', table_name='call_parties')
    op.create_index(
        'ix_call_parties_call_id',
        'call_parties',
        ['call_id', 'user_id'],
        unique=False,
        # not a key column: SQLite would prefer this index to ix_call_parties_tenant_user
        # for one user's probes, which stay in one part of that one
        postgresql_include=['tenant_id'],
    )
    if op.get_bind().dialect.name == 'postgresql':
        # statistics of the new columns and of the rebuilt index on lower(text),
        # which the planner weighs for a label's page of calls
        op.execute('ANALYZE recording_labels')


def downgrade() -> None:
    op.drop_index('ix_call_parties_call_id', table_name='call_parties')
    op.create_index('ix_call_parties_call_id', 'call_parties', ['call_id'], unique=False)
    op.drop_index('ix_recording_labels_tenant_lower_text', table_name='recording_labels')
    with op.batch_alter_table('recording_labels') as batch_op:
        batch_op.drop_index('ix_recording_labels_call_id')
        batch_op.drop_constraint(FK, type_='foreignkey')
        batch_op.drop_column('started_at')
        batch_op.drop_column('call_id')
    op.create_index(
        'ix_recording_labels_tenant_lower_text',
        'recording_labels',
        ['tenant_id', sa.text('lower(text)'), 'recording_id'],
    )
