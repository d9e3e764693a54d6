"""post call intelligence

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 18:25:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'call_jobs',
        sa.Column('call_id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('owner', sa.String(length=80), nullable=True),
        sa.Column('lease_expires_at', callfleet.db.base.UTCDateTime(timezone=True),
                  nullable=True),
        sa.Column('available_at', callfleet.db.base.UTCDateTime(timezone=True),
                  nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id'],
                                name=op.f('fk_call_jobs_call_id_calls'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('call_id', 'kind', name=op.f('pk_call_jobs')),
    )
    op.create_index('ix_call_jobs_kind_status_available_at', 'call_jobs',
                    ['kind', 'status', 'available_at'], unique=False)
    with op.batch_alter_table('assistants') as batch:
        batch.add_column(sa.Column('llm_base_url', sa.String(length=500), nullable=True))
        batch.add_column(sa.Column('llm_api_key', sa.Text(), nullable=True))
        batch.add_column(sa.Column('tools', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assistants') as batch:
        batch.drop_column('tools')
        batch.drop_column('llm_api_key')
        batch.drop_column('llm_base_url')
    op.drop_index('ix_call_jobs_kind_status_available_at', table_name='call_jobs')
    op.drop_table('call_jobs')
