"""retention plans: each tenant on a plan; the slider's range lives on the plan only

Every tenant's (retention_min_days, retention_max_days) is mapped to a plan
with that range: its own plan name when that plan has the range, else an
existing plan with it, else a new ``custom-<min>-<max>`` plan (default: the
minimum). Then the two tenant columns go.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:00:00
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_tenants = sa.table(
    'tenants',
    sa.column('id', sa.Integer()),
    sa.column('plan', sa.String(32)),
    sa.column('retention_days', sa.Integer()),
    sa.column('retention_min_days', sa.Integer()),
    sa.column('retention_max_days', sa.Integer()),
)
_plans = sa.table(
    'plans',
    sa.column('id', sa.Integer()),
    sa.column('name', sa.String(32)),
    sa.column('retention_min_days', sa.Integer()),
    sa.column('retention_max_days', sa.Integer()),
    sa.column('retention_default_days', sa.Integer()),
    sa.column('minute_quota', sa.Integer()),
    sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('created_by', sa.String(200)),
)


def _plan_for(plans: dict[str, tuple[int, int]], own: str, low: int, high: int) -> str | None:
    if plans.get(own) == (low, high):
        return own
    # a quota plan is not the same offer as a plain range
    matches = sorted(name for name, bounds in plans.items() if bounds == (low, high))
    return matches[0] if matches else None


def upgrade() -> None:
    bind = op.get_bind()
    plans = {
        row.name: (row.retention_min_days, row.retention_max_days)
        for row in bind.execute(
            sa.select(_plans.c.name, _plans.c.retention_min_days, _plans.c.retention_max_days)
            .where(_plans.c.minute_quota.is_(None))
        )
    }
    tenants = bind.execute(
        sa.select(_tenants.c.id, _tenants.c.plan, _tenants.c.retention_min_days,
                  _tenants.c.retention_max_days)
    ).all()
    now = datetime.now(UTC)
    for row in tenants:
        low, high = row.retention_min_days, row.retention_max_days
        name = _plan_for(plans, row.plan, low, high)
        if name is None:
            name = f'custom-{low}-{high}'
            bind.execute(sa.insert(_plans).values(
                name=name, retention_min_days=low, retention_max_days=high,
                retention_default_days=low, minute_quota=None, created_at=now,
                created_by='migration',
            ))
            plans[name] = (low, high)
        if name != row.plan:
            bind.execute(sa.update(_tenants).where(_tenants.c.id == row.id).values(plan=name))
    with op.batch_alter_table('tenants') as batch:
        batch.drop_column('retention_max_days')
        batch.drop_column('retention_min_days')


def downgrade() -> None:
    with op.batch_alter_table('tenants') as batch:
        batch.add_column(sa.Column('retention_min_days', sa.Integer(), nullable=False,
                                   server_default='7'))
        batch.add_column(sa.Column('retention_max_days', sa.Integer(), nullable=False,
                                   server_default='180'))
    bind = op.get_bind()
    for row in bind.execute(sa.select(_plans.c.name, _plans.c.retention_min_days,
                                      _plans.c.retention_max_days)).all():
        bind.execute(sa.update(_tenants).where(_tenants.c.plan == row.name).values(
            retention_min_days=row.retention_min_days, retention_max_days=row.retention_max_days))
