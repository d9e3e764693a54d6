"""event outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:25:00
"""
import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'outbox_events',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('type', sa.String(length=60), nullable=False),
        sa.Column('subject_id', sa.String(length=40), nullable=True),
        sa.Column('data', callfleet.db.base.JSONType, nullable=False),
        sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('dispatched_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_outbox_events_dispatched_at_id', 'outbox_events',
                    ['dispatched_at', 'id'], unique=False)
    op.create_index('ix_outbox_events_team_id_id', 'outbox_events', ['team_id', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_events_team_id_id', table_name='outbox_events')
    op.drop_index('ix_outbox_events_dispatched_at_id', table_name='outbox_events')
    op.drop_table('outbox_events')
