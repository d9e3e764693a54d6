"""team pacing state

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:14:12.656496
"""
import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pacing_tokens', sa.Float(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('pacing_at', callfleet.db.base.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.drop_column('pacing_at')
        batch_op.drop_column('pacing_tokens')

