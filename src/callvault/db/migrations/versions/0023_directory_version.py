"""The directory's version: one counter, bumped by the database with every change

Every node of a cluster keeps the directory (tenants, users, modes, sources,
call routes) in memory and must follow a change made on any other node within
a second (issue 13). The counter is bumped by triggers in the same transaction
as the change itself, whoever makes it (API, pages, CLI, jobs, a cascade), so
nothing has to remember to; nodes poll it (``roles/directory.py``) and, on
PostgreSQL, are also woken by ``NOTIFY callvault_directory`` at commit.

On PostgreSQL the trigger runs BEFORE each statement: the counter's row lock
is then the first lock a directory change takes, so two changes queue on it
rather than deadlock on each other's rows.

A later migration that rebuilds one of these tables on SQLite (batch mode
copies and drops the table, and its triggers with it) must create the
triggers again: ``tests/roles/test_directory_version.py`` checks they exist.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

# every table ``Directory.load``, ``SourceRegistry.load`` and ``RouteTable.load`` read
TABLES = (
    'tenants', 'tenant_domains', 'tenant_numbers', 'tenant_number_blocks',
    'tenant_enablements', 'legal_acceptances', 'announcement_prompts',
    'users', 'user_numbers', 'user_aors', 'user_contacts', 'team_members',
    'recording_sources', 'recording_source_tenants', 'call_routes',
)
OPERATIONS = ('insert', 'update', 'delete')
CHANNEL = 'callvault_directory'


def upgrade() -> None:
    op.create_table('directory_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO directory_version (id, version) VALUES (1, 1)")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(
            "CREATE FUNCTION callvault_directory_changed() RETURNS trigger AS $$ BEGIN "
            "UPDATE directory_version SET version = version + 1 WHERE id = 1; "
            f"PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER directory_changed BEFORE INSERT OR UPDATE OR DELETE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION callvault_directory_changed()"
            )
        return
    for table in TABLES:
        for operation in OPERATIONS:
            op.execute(
                f"CREATE TRIGGER directory_changed_{table}_{operation} "
                f"AFTER {operation.upper()} ON {table} BEGIN "
                "UPDATE directory_version SET version = version + 1 WHERE id = 1; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS directory_changed ON {table}")
        op.execute("DROP FUNCTION IF EXISTS callvault_directory_changed()")
    else:
        for table in TABLES:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER IF EXISTS directory_changed_{table}_{operation}")
    op.drop_table('directory_version')
