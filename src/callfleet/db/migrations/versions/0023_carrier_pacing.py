"""Calls-per-second buckets per carrier account, shared by every worker

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 10:05:00
"""
import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'carrier_pacing',
        sa.Column('account', sa.String(length=160), nullable=False),
        sa.Column('tokens', sa.Float(), nullable=False),
        sa.Column('at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('account', name='pk_carrier_pacing'),
    )


def downgrade() -> None:
    op.drop_table('carrier_pacing')
