"""The company a number's unknown inbound callers are created in

Revision ID: 0026
Revises: 0023
Create Date: 2026-12-06 09:15:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0026'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('phone_numbers') as batch:
        batch.add_column(sa.Column('company_id', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('phone_numbers') as batch:
        batch.drop_column('company_id')
