"""teams.custom_fields_version

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 15:30:00

A counter bumped in the same transaction as every create, update or delete of one of the
team's custom field definitions. ``POST /api/crm/contacts`` checks the custom field values
against definitions it remembers, and its single ``INSERT … SELECT`` inserts only while the
team's counter still has the value they were read at; otherwise it reads them again
(docs/decisions/0013-contact-write-path.md).
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('custom_fields_version', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('custom_fields_version')
