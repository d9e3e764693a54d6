"""compliance: contact address and consent, campaign purpose, dial decisions, change log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 04:00:00

Issue 16 (docs/compliance.md, decisions 0023-0026): contacts gain the companies' address
columns (the jurisdictions whose rules apply) and a consent record; campaigns a purpose
(telemarketing | informational) and whether the consent check is on; every dial decision of
the dialer is recorded in dial_decisions; owners' compliance changes in compliance_changes.
A (team, number, start) index on calls serves the frequency caps' look-back.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

UTC = callfleet.db.base.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address_line1', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('state', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('postal_code', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('consent_kind', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('consent_source', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('consent_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('consent_evidence', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('consent_revoked_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('consent_revocation_channel', sa.String(length=40),
                                      nullable=True))
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose', sa.String(length=20), nullable=False,
                                      server_default='informational'))
        batch_op.add_column(sa.Column('consent_check', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
    op.create_index('ix_calls_team_id_to_number_started_at', 'calls',
                    ['team_id', 'to_number', 'started_at'])
    op.create_table(
        'dial_decisions',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('campaign_id', sa.String(length=40), nullable=True),
        sa.Column('enrollment_id', sa.String(length=40), nullable=True),
        sa.Column('contact_id', sa.String(length=40), nullable=True),
        sa.Column('call_id', sa.String(length=40), nullable=True),
        sa.Column('phone', sa.String(length=32), nullable=True),
        sa.Column('evaluated_at', UTC, nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=True),
        sa.Column('rules_fired', JSON, nullable=False),
        sa.Column('table_version', sa.String(length=20), nullable=True),
        sa.Column('jurisdictions', JSON, nullable=False),
        sa.Column('local_times', JSON, nullable=False),
        sa.Column('next_allowed_at', UTC, nullable=True),
        sa.Column('detail', JSON, nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name=op.f('fk_dial_decisions_team_id_teams'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_dial_decisions')),
    )
    op.create_index('ix_dial_decisions_team_id_evaluated_at_id', 'dial_decisions',
                    ['team_id', 'evaluated_at', 'id'])
    op.create_index('ix_dial_decisions_team_id_contact_id', 'dial_decisions',
                    ['team_id', 'contact_id', 'evaluated_at'])
    op.create_index('ix_dial_decisions_team_id_campaign_id', 'dial_decisions',
                    ['team_id', 'campaign_id', 'evaluated_at'])
    op.create_table(
        'compliance_changes',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('action', sa.String(length=60), nullable=False),
        sa.Column('detail', JSON, nullable=False),
        sa.Column('created_at', UTC, nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'],
                                name=op.f('fk_compliance_changes_team_id_teams'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_compliance_changes')),
    )
    op.create_index('ix_compliance_changes_team_id_created_at', 'compliance_changes',
                    ['team_id', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_compliance_changes_team_id_created_at', table_name='compliance_changes')
    op.drop_table('compliance_changes')
    for name in ('ix_dial_decisions_team_id_campaign_id',
                 'ix_dial_decisions_team_id_contact_id',
                 'ix_dial_decisions_team_id_evaluated_at_id'):
        op.drop_index(name, table_name='dial_decisions')
    op.drop_table('dial_decisions')
    op.drop_index('ix_calls_team_id_to_number_started_at', table_name='calls')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('consent_check')
        batch_op.drop_column('purpose')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        for name in ('consent_revocation_channel', 'consent_revoked_at', 'consent_evidence',
                     'consent_at', 'consent_source', 'consent_kind', 'country', 'postal_code',
                     'state', 'city', 'address_line1'):
            batch_op.drop_column(name)
