"""calls.greeting: the abandonment judgement stored with the messages

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 10:10:00

The campaign dashboard judged up to 20,000 transcripts per request to count abandoned calls.
Each call now keeps compliance.duties.greeting of its messages (on_time / late / none),
written with them, and the dashboard counts it from an index
(docs/decisions/0048-greeting-judged-when-written.md). Existing calls are judged here in
batches, by the same function, on SQLite and PostgreSQL alike.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from callfleet.compliance.duties import greeting

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

BATCH = 2_000


def _messages(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def upgrade() -> None:
    # A constant default: no table rebuild on SQLite, no rewrite on PostgreSQL 11+. "none"
    # is the judgement of the empty transcript every call starts with.
    op.add_column('calls', sa.Column('greeting', sa.String(8), nullable=False,
                                     server_default='none'))
    conn = op.get_bind()
    calls = sa.table('calls', sa.column('id', sa.String), sa.column('messages', sa.Text),
                     sa.column('greeting', sa.String))
    # Read as text on both databases (jsonb -> text on PostgreSQL), decoded here.
    text = (calls.c.messages if conn.dialect.name == 'sqlite'
            else sa.cast(calls.c.messages, sa.Text))
    last = ''
    while True:
        rows = conn.execute(
            sa.select(calls.c.id, text.label('m')).select_from(calls)
            .where(calls.c.id > last).order_by(calls.c.id).limit(BATCH)).all()
        if not rows:
            break
        last = rows[-1][0]
        judged = [{'i': i, 'g': g} for i, m in rows
                  if (g := greeting(_messages(m))) != 'none']
        if judged:
            conn.execute(calls.update().where(calls.c.id == sa.bindparam('i'))
                         .values(greeting=sa.bindparam('g')), judged)
    op.drop_index('ix_calls_campaign_id_answered_at', table_name='calls')
    op.create_index('ix_calls_campaign_answered_greeting', 'calls',
                    ['campaign_id', 'answered_at', 'outcome', 'greeting'])


def downgrade() -> None:
    op.drop_index('ix_calls_campaign_answered_greeting', table_name='calls')
    op.create_index('ix_calls_campaign_id_answered_at', 'calls', ['campaign_id', 'answered_at'])
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('greeting')
