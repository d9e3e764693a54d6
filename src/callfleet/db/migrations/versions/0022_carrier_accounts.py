"""A team's own carrier accounts (Twilio, Telnyx), credentials encrypted at rest

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-06 10:00:00
"""
import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0022'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'carrier_accounts',
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('provider', sa.String(length=20), nullable=False),
        sa.Column('credentials', sa.Text(), nullable=False),
        sa.Column('summary', callfleet.db.base.JSONType, nullable=False),
        sa.Column('calls_per_second', sa.Float(), nullable=True),
        sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name='fk_carrier_accounts_team_id_teams', ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('team_id', 'provider', name='pk_carrier_accounts'),
    )


def downgrade() -> None:
    op.drop_table('carrier_accounts')
