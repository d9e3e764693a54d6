"""campaign engine: assistants, numbers, campaigns, enrollments, calls, DNC, simulated carrier

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 15:17:05.119283
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clock_anchor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scale', sa.Double(), nullable=False),
    sa.Column('real_anchor', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sim_anchor', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clock_anchor'))
    )
    op.create_table('sim_calls',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('call_ref', sa.String(length=40), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('behaviour', sa.String(length=30), nullable=False),
    sa.Column('persona', sa.String(length=30), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('timeline', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('next_event_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('hangup_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('events_sent', sa.Integer(), nullable=False),
    sa.Column('claimed_until', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sim_calls')),
    sa.UniqueConstraint('call_ref', name=op.f('uq_sim_calls_call_ref'))
    )
    with op.batch_alter_table('sim_calls', schema=None) as batch_op:
        batch_op.create_index('ix_sim_calls_next_event_at', ['next_event_at'], unique=False)
        batch_op.create_index('ix_sim_calls_to_number', ['to_number'], unique=False)

    op.create_table('sim_profiles',
    sa.Column('phone_number', sa.String(length=32), nullable=False),
    sa.Column('behaviours', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('persona', sa.String(length=30), nullable=True),
    sa.Column('ring_seconds', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('phone_number', name=op.f('pk_sim_profiles'))
    )
    op.create_table('assistants',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('template_id', sa.String(length=40), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=False),
    sa.Column('first_message', sa.Text(), nullable=False),
    sa.Column('provider', sa.String(length=60), nullable=False),
    sa.Column('model', sa.String(length=120), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=False),
    sa.Column('max_tokens', sa.Integer(), nullable=False),
    sa.Column('voice_provider', sa.String(length=60), nullable=True),
    sa.Column('voice_model', sa.String(length=120), nullable=True),
    sa.Column('voice_id', sa.String(length=120), nullable=True),
    sa.Column('transcriber_provider', sa.String(length=60), nullable=True),
    sa.Column('transcriber_model', sa.String(length=120), nullable=True),
    sa.Column('language', sa.String(length=20), nullable=False),
    sa.Column('recording_enabled', sa.Boolean(), nullable=False),
    sa.Column('inbound_enabled', sa.Boolean(), nullable=False),
    sa.Column('outbound_enabled', sa.Boolean(), nullable=False),
    sa.Column('voicemail_detection_enabled', sa.Boolean(), nullable=False),
    sa.Column('voicemail_action', sa.String(length=20), nullable=False),
    sa.Column('voicemail_message', sa.Text(), nullable=True),
    sa.Column('end_call', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('call_transfer', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('info_extraction', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('success_criteria', sa.Text(), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_assistants_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assistants'))
    )
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.create_index('ix_assistants_team_id_id', ['team_id', 'id'], unique=False)

    op.create_table('calls',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('direction', sa.String(length=10), nullable=False),
    sa.Column('campaign_id', sa.String(length=40), nullable=True),
    sa.Column('enrollment_id', sa.String(length=40), nullable=True),
    sa.Column('contact_id', sa.String(length=40), nullable=True),
    sa.Column('assistant_id', sa.String(length=40), nullable=True),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=True),
    sa.Column('ended_reason', sa.String(length=80), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('carrier', sa.String(length=20), nullable=False),
    sa.Column('carrier_call_id', sa.String(length=100), nullable=True),
    sa.Column('messages', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('transcript', sa.Text(), nullable=True),
    sa.Column('analysis', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('recording_url', sa.String(length=500), nullable=True),
    sa.Column('lease_owner', sa.String(length=80), nullable=True),
    sa.Column('lease_expires_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_calls_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('enrollment_id', 'attempt', name=op.f('uq_calls_enrollment_id_attempt'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_campaign_id_status', ['campaign_id', 'status'], unique=False)
        batch_op.create_index('ix_calls_carrier_call_id', ['carrier_call_id'], unique=False)
        batch_op.create_index('ix_calls_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('ix_calls_status_lease', ['status', 'lease_expires_at'], unique=False)
        batch_op.create_index('ix_calls_team_id_id', ['team_id', 'id'], unique=False)

    op.create_table('dnc_entries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('phone_number', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=True),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_dnc_entries_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dnc_entries')),
    sa.UniqueConstraint('team_id', 'phone_number', name=op.f('uq_dnc_entries_team_id_phone_number'))
    )
    op.create_table('call_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('call_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_events_call_id_calls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events'))
    )
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.create_index('ix_call_events_call_id_at', ['call_id', 'at'], unique=False)

    op.create_table('campaigns',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('assistant_id', sa.String(length=40), nullable=False),
    sa.Column('company_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('from_number_ids', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('scheduled_start_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('call_window_start', sa.String(length=8), nullable=False),
    sa.Column('call_window_end', sa.String(length=8), nullable=False),
    sa.Column('call_window_timezone', sa.String(length=64), nullable=False),
    sa.Column('call_window_days', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('use_contact_timezone', sa.Boolean(), nullable=False),
    sa.Column('max_concurrent_calls', sa.Integer(), nullable=False),
    sa.Column('max_attempts_per_contact', sa.Integer(), nullable=False),
    sa.Column('retry_delay_minutes', sa.Integer(), nullable=False),
    sa.Column('retry', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('audience', sa.String(length=20), nullable=False),
    sa.Column('no_auto_complete', sa.Boolean(), nullable=False),
    sa.Column('voicemail_action', sa.String(length=20), nullable=True),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('active_calls', sa.Integer(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assistant_id'], ['assistants.id'], name=op.f('fk_campaigns_assistant_id_assistants')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_campaigns_company_id_companies')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_campaigns_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_status', ['status'], unique=False)
        batch_op.create_index('ix_campaigns_team_id_id', ['team_id', 'id'], unique=False)

    op.create_table('phone_numbers',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('phone_number', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assistant_id', sa.String(length=40), nullable=True),
    sa.Column('friendly_name', sa.String(length=200), nullable=True),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('number_type', sa.String(length=20), nullable=False),
    sa.Column('monthly_price', sa.Numeric(precision=10, scale=2), nullable=True),
    sa.Column('provider_ref', sa.String(length=200), nullable=True),
    sa.Column('capabilities', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assistant_id'], ['assistants.id'], name=op.f('fk_phone_numbers_assistant_id_assistants'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_phone_numbers_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_numbers'))
    )
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.create_index('ix_phone_numbers_assistant_id', ['assistant_id'], unique=False)
        batch_op.create_index('ix_phone_numbers_team_id_id', ['team_id', 'id'], unique=False)
        batch_op.create_index('uq_phone_numbers_phone_number', ['phone_number'], unique=True)

    op.create_table('campaign_contacts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('campaign_id', sa.String(length=40), nullable=False),
    sa.Column('contact_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('outcome_counts', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.Column('next_attempt_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_outcome', sa.String(length=20), nullable=True),
    sa.Column('last_call_id', sa.String(length=40), nullable=True),
    sa.Column('from_number_id', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_contacts_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_campaign_contacts_contact_id_contacts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_contacts')),
    sa.UniqueConstraint('campaign_id', 'contact_id', name=op.f('uq_campaign_contacts_campaign_id_contact_id'))
    )
    with op.batch_alter_table('campaign_contacts', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_contacts_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('ix_campaign_contacts_due', ['campaign_id', 'status', 'next_attempt_at'], unique=False)

    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_calls', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('active_calls')

    with op.batch_alter_table('campaign_contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_contacts_due')
        batch_op.drop_index('ix_campaign_contacts_contact_id')

    op.drop_table('campaign_contacts')
    with op.batch_alter_table('phone_numbers', schema=None) as batch_op:
        batch_op.drop_index('uq_phone_numbers_phone_number')
        batch_op.drop_index('ix_phone_numbers_team_id_id')
        batch_op.drop_index('ix_phone_numbers_assistant_id')

    op.drop_table('phone_numbers')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_team_id_id')
        batch_op.drop_index('ix_campaigns_status')

    op.drop_table('campaigns')
    with op.batch_alter_table('call_events', schema=None) as batch_op:
        batch_op.drop_index('ix_call_events_call_id_at')

    op.drop_table('call_events')
    op.drop_table('dnc_entries')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_team_id_id')
        batch_op.drop_index('ix_calls_status_lease')
        batch_op.drop_index('ix_calls_contact_id')
        batch_op.drop_index('ix_calls_carrier_call_id')
        batch_op.drop_index('ix_calls_campaign_id_status')

    op.drop_table('calls')
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.drop_index('ix_assistants_team_id_id')

    op.drop_table('assistants')
    op.drop_table('sim_profiles')
    with op.batch_alter_table('sim_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_sim_calls_next_event_at')

    op.drop_table('sim_calls')
    op.drop_table('clock_anchor')
