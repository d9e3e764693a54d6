"""web app: contact imports with a column mapping and progress

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:00:00

A CSV import started from the web app is a row here: the uploaded file's place in the data
directory, the column mapping chosen on the preview, and counters that the import updates
as its batches commit, so the progress bar and the rejected rows outlive the request
(docs/decisions/0033-web-contact-import.md).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

TS = callfleet.db.base.UTCDateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table(
        'contact_imports',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.String(length=40), nullable=True),
        sa.Column('filename', sa.String(length=300), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('company_id', sa.String(length=40), nullable=True),
        sa.Column('on_duplicate', sa.String(length=10), nullable=False),
        sa.Column('mapping', JSON, nullable=False),
        sa.Column('total_rows', sa.Integer(), nullable=False),
        sa.Column('processed', sa.Integer(), nullable=False),
        sa.Column('imported', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('errors', JSON, nullable=False),
        sa.Column('message', sa.Text(), nullable=True),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.ForeignKeyConstraint(['team_id'], ['teams.id'], ondelete='CASCADE',
                                name=op.f('fk_contact_imports_team_id_teams')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_imports')),
    )
    op.create_index('ix_contact_imports_team_id_id', 'contact_imports', ['team_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_contact_imports_team_id_id', table_name='contact_imports')
    op.drop_table('contact_imports')
