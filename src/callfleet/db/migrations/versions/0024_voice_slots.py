"""Voice slots: the voice processes with their capacity and heartbeat lease, and the
process a call's slot was reserved on

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 09:00:00
"""
import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'voice_processes',
        sa.Column('id', sa.String(length=120), nullable=False),
        sa.Column('host', sa.String(length=200), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=False),
        sa.Column('reserved', sa.Integer(), nullable=False),
        sa.Column('draining', sa.Boolean(), nullable=False),
        sa.Column('started_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('heartbeat_at', callfleet.db.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('lease_expires_at', callfleet.db.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_voice_processes'),
    )
    with op.batch_alter_table('calls') as batch:
        batch.add_column(sa.Column('voice_process_id', sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('calls') as batch:
        batch.drop_column('voice_process_id')
    op.drop_table('voice_processes')
