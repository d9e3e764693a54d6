"""initial schema: teams, keys, CRM

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 15:09:49.477906
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('team_id', 'key', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_created_at', ['created_at'], unique=False)

    op.create_table('teams',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('slug', name=op.f('uq_teams_slug'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('key_prefix', sa.String(length=20), nullable=False),
    sa.Column('scopes', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('expires_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_api_keys_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_team_id'), ['team_id'], unique=False)

    op.create_table('companies',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('website', sa.String(length=500), nullable=True),
    sa.Column('industry', sa.String(length=200), nullable=True),
    sa.Column('company_size', sa.String(length=100), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('address_line1', sa.String(length=300), nullable=True),
    sa.Column('address_line2', sa.String(length=300), nullable=True),
    sa.Column('city', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=40), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('name_lower', sa.String(length=300), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_companies_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies'))
    )
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.create_index('ix_companies_team_id_id', ['team_id', 'id'], unique=False)
        batch_op.create_index('ix_companies_team_id_name_lower', ['team_id', 'name_lower'], unique=False)

    op.create_table('custom_field_definitions',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('entity_type', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('options', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_custom_field_definitions_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_field_definitions')),
    sa.UniqueConstraint('team_id', 'entity_type', 'key', name=op.f('uq_custom_field_definitions_team_id_entity_type_key'))
    )
    op.create_table('contacts',
    sa.Column('team_id', sa.String(length=40), nullable=False),
    sa.Column('company_id', sa.String(length=40), nullable=False),
    sa.Column('first_name', sa.String(length=200), nullable=False),
    sa.Column('last_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('phone_secondary', sa.String(length=32), nullable=True),
    sa.Column('job_title', sa.String(length=300), nullable=True),
    sa.Column('lead_status', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('preferred_contact_method', sa.String(length=50), nullable=True),
    sa.Column('do_not_call', sa.Boolean(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('custom_fields', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('tags', sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql'), nullable=False),
    sa.Column('email_lower', sa.String(length=320), nullable=True),
    sa.Column('search_text', sa.Text(), nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_contacts_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_contacts_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_company_id', ['company_id'], unique=False)
        batch_op.create_index('ix_contacts_team_id_company_id_id', ['team_id', 'company_id', 'id'], unique=False)
        batch_op.create_index('ix_contacts_team_id_email_lower', ['team_id', 'email_lower'], unique=False)
        batch_op.create_index('ix_contacts_team_id_id', ['team_id', 'id'], unique=False)
        batch_op.create_index('ix_contacts_team_id_lead_status_id', ['team_id', 'lead_status', 'id'], unique=False)
        batch_op.create_index('ix_contacts_team_id_phone', ['team_id', 'phone'], unique=False)

    _create_search_index()


def downgrade() -> None:
    _drop_search_index()
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_team_id_phone')
        batch_op.drop_index('ix_contacts_team_id_lead_status_id')
        batch_op.drop_index('ix_contacts_team_id_id')
        batch_op.drop_index('ix_contacts_team_id_email_lower')
        batch_op.drop_index('ix_contacts_team_id_company_id_id')
        batch_op.drop_index('ix_contacts_company_id')

    op.drop_table('contacts')
    op.drop_table('custom_field_definitions')
    with op.batch_alter_table('companies', schema=None) as batch_op:
        batch_op.drop_index('ix_companies_team_id_name_lower')
        batch_op.drop_index('ix_companies_team_id_id')

    op.drop_table('companies')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_team_id'))

    op.drop_table('api_keys')
    op.drop_table('teams')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_created_at')

    op.drop_table('idempotency_keys')


# Contact search ("search" filter: substring over names, email and phone digits) is served by
# a trigram index on contacts.search_text: pg_trgm GIN on PostgreSQL, an FTS5 trigram table
# kept in sync by triggers on SQLite. See docs/decisions/0003-contact-search.md.
def _create_search_index() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_contacts_search_trgm ON contacts "
            "USING gin (search_text gin_trgm_ops)"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE contacts_fts USING fts5("
            "search_text, content='contacts', content_rowid='rowid', tokenize='trigram')"
        )
        op.execute(
            "CREATE TRIGGER contacts_fts_ai AFTER INSERT ON contacts BEGIN "
            "INSERT INTO contacts_fts(rowid, search_text) VALUES (new.rowid, new.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER contacts_fts_ad AFTER DELETE ON contacts BEGIN "
            "INSERT INTO contacts_fts(contacts_fts, rowid, search_text) "
            "VALUES ('delete', old.rowid, old.search_text); END"
        )
        op.execute(
            "CREATE TRIGGER contacts_fts_au AFTER UPDATE OF search_text ON contacts BEGIN "
            "INSERT INTO contacts_fts(contacts_fts, rowid, search_text) "
            "VALUES ('delete', old.rowid, old.search_text); "
            "INSERT INTO contacts_fts(rowid, search_text) VALUES (new.rowid, new.search_text); END"
        )


def _drop_search_index() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_contacts_search_trgm")
    else:
        for trig in ("contacts_fts_ai", "contacts_fts_ad", "contacts_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trig}")
        op.execute("DROP TABLE IF EXISTS contacts_fts")
