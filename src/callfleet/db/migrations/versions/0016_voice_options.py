"""assistants.voice_options, sim_profiles.audio

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 04:40:00

Live voice: an assistant's conversation timing and speech endpoints (interruption
sensitivity, end-of-turn time, silence timeout with its idle prompt, maximum call duration,
OpenAI-compatible speech base URLs), and the simulated network's audio mode per number.
"""

import sqlalchemy as sa
from alembic import op

import callfleet.db.base

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('voice_options', callfleet.db.base.JSONType,
                                      nullable=True))
    with op.batch_alter_table('sim_profiles', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audio', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sim_profiles', schema=None) as batch_op:
        batch_op.drop_column('audio')
    with op.batch_alter_table('assistants', schema=None) as batch_op:
        batch_op.drop_column('voice_options')
