"""contacts(team_id) for counting a team's contacts

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 21:45:00

Every contact list returns the exact ``count`` of the rows its filters match; without
filters that is every contact of the team. A single-column ``team_id`` index is the
cheapest structure to count them from: on PostgreSQL its equal keys are deduplicated into
posting lists (a fraction of the size of ``(team_id, id)``), and on SQLite its entries are
half as wide. Measured on 1,000,000 contacts it halves the count of a large team. The
contact import re-ANALYZEs as it grows a team, so the planner does not take this index for
the import's per-key dedup probes (docs/decisions/0012-crm-performance.md).
"""

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

INDEX = "ix_contacts_team_id"


def upgrade() -> None:
    op.create_index(INDEX, "contacts", ["team_id"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="contacts")
