"""assistants.deleted_at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 16:00:00

SPEC 3: deleting an assistant is a 409 only while a campaign that runs (or may run again
without being edited: scheduled, paused) uses it. An assistant that finished campaigns or
calls refer to is soft-deleted, so their history keeps it.
"""

import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', callfleet.db.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
