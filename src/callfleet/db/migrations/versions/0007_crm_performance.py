"""crm performance

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 18:25:00

The lead-status index of contacts widened to cover ``phone``, so ``leadStatus`` + ``hasPhone``
lists and counts read no table rows (docs/decisions/0012-crm-performance.md).

Not added, measured: a single-column ``team_id`` index made a team's count ~2x cheaper on
PostgreSQL, but the planner then probed it (and filtered the phone) for the import's per-key
dedup lookups into a new team, whose size its statistics underestimate: quadratic imports.
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_team_id_lead_status_id_phone',
                              ['team_id', 'lead_status', 'id', 'phone'], unique=False)
        batch_op.drop_index('ix_contacts_team_id_lead_status_id')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ANALYZE contacts')


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index('ix_contacts_team_id_lead_status_id',
                              ['team_id', 'lead_status', 'id'], unique=False)
        batch_op.drop_index('ix_contacts_team_id_lead_status_id_phone')
