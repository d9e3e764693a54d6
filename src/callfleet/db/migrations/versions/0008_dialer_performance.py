"""dialer performance

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 18:25:00

The claim query (dialer.engine ``_claim_campaign``) reads a campaign's due pending
enrollments in ``priority DESC, next_attempt_at ASC NULLS FIRST, id`` order and stops after a
batch. This index has exactly that order, so a claim reads only the batch instead of sorting
every pending enrollment of the campaign on every pass (a 1,000,000-contact campaign would
otherwise sort 1,000,000 rows several times a second). SQLite sorts NULLs first in ascending
order and has no NULLS FIRST in index definitions, hence the two spellings.
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEX = "ix_campaign_contacts_claim"


def upgrade() -> None:
    nulls_first = "" if op.get_bind().dialect.name == "sqlite" else " NULLS FIRST"
    op.create_index(INDEX, "campaign_contacts", [
        "campaign_id", "status", sa.text("priority DESC"),
        sa.text(f"next_attempt_at ASC{nulls_first}"), "id",
    ])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="campaign_contacts")
