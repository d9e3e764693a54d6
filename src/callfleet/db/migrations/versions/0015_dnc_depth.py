"""do-not-call depth: removed entries kept, national registry suppression lists

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 04:30:00

Issue 16: a removed do-not-call entry is kept with its removal time (the request stays on
record for at least five years); downloads of the National Do Not Call Registry (area code
and number lists) are stored as suppression lists with the registry's date.
"""

import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

UTC = callfleet.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('dnc_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', UTC, nullable=True))
    op.create_table(
        'suppression_lists',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('registry_date', UTC, nullable=False),
        sa.Column('numbers', sa.Integer(), nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name=op.f('fk_suppression_lists_team_id_teams'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_lists')),
    )
    op.create_index('ix_suppression_lists_team_id_created_at', 'suppression_lists',
                    ['team_id', 'created_at'])
    op.create_table(
        'suppressed_numbers',
        sa.Column('list_id', sa.String(length=40), nullable=False),
        sa.Column('phone_number', sa.String(length=32), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['list_id'], ['suppression_lists.id'],
                                name=op.f('fk_suppressed_numbers_list_id_suppression_lists'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('list_id', 'phone_number', name=op.f('pk_suppressed_numbers')),
    )
    op.create_index('ix_suppressed_numbers_team_id_phone_number', 'suppressed_numbers',
                    ['team_id', 'phone_number'])


def downgrade() -> None:
    op.drop_index('ix_suppressed_numbers_team_id_phone_number', table_name='suppressed_numbers')
    op.drop_table('suppressed_numbers')
    op.drop_index('ix_suppression_lists_team_id_created_at', table_name='suppression_lists')
    op.drop_table('suppression_lists')
    with op.batch_alter_table('dnc_entries', schema=None) as batch_op:
        batch_op.drop_column('removed_at')
