"""webhook endpoints and deliveries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 18:25:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import callfleet.db.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
TS = callfleet.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    # outbox_events.seq: commit order of events (per-subject delivery order).
    if bind.dialect.name == 'postgresql':
        op.execute('CREATE SEQUENCE outbox_events_seq_seq')
        op.add_column('outbox_events', sa.Column(
            'seq', sa.BigInteger(), nullable=True,
            server_default=sa.text("nextval('outbox_events_seq_seq')")))
        op.execute("ALTER SEQUENCE outbox_events_seq_seq OWNED BY outbox_events.seq")
        op.execute(
            "UPDATE outbox_events SET seq = o.n FROM (SELECT id, row_number() OVER "
            "(ORDER BY created_at, id) AS n FROM outbox_events) o WHERE o.id = outbox_events.id")
        op.execute("SELECT setval('outbox_events_seq_seq', "
                   "COALESCE((SELECT max(seq) FROM outbox_events), 0) + 1, false)")
    else:
        with op.batch_alter_table('outbox_events') as batch_op:
            batch_op.add_column(sa.Column('seq', sa.BigInteger(), nullable=True))
        op.execute('UPDATE outbox_events SET seq = rowid')
        # SQLite has no sequences: the rowid grows with every insert (one writer at a time).
        op.execute(
            'CREATE TRIGGER outbox_events_seq AFTER INSERT ON outbox_events '
            'WHEN NEW.seq IS NULL BEGIN '
            'UPDATE outbox_events SET seq = NEW.rowid WHERE rowid = NEW.rowid; END')
    op.create_index('ix_outbox_events_undispatched_seq', 'outbox_events', ['seq'],
                    postgresql_where=sa.text('dispatched_at IS NULL'),
                    sqlite_where=sa.text('dispatched_at IS NULL'))
    op.create_index('ix_outbox_events_undispatched_subject', 'outbox_events',
                    ['subject_id', 'seq'],
                    postgresql_where=sa.text('dispatched_at IS NULL'),
                    sqlite_where=sa.text('dispatched_at IS NULL'))

    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('events', JSON, nullable=False),
        sa.Column('secret_encrypted', sa.Text(), nullable=False),
        sa.Column('secret_hint', sa.String(length=40), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_index('ix_webhook_endpoints_team_id_id', 'webhook_endpoints', ['team_id', 'id'])

    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('team_id', sa.String(length=40), nullable=False),
        sa.Column('endpoint_id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('event_type', sa.String(length=60), nullable=False),
        sa.Column('subject_id', sa.String(length=40), nullable=True),
        sa.Column('event_seq', sa.BigInteger(), nullable=False),
        sa.Column('event_created_at', TS, nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', TS, nullable=True),
        sa.Column('lease_owner', sa.String(length=80), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('attempt_log', JSON, nullable=False),
        sa.Column('created_at', TS, nullable=False),
        sa.Column('updated_at', TS, nullable=False),
        sa.Column('delivered_at', TS, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    )
    op.create_index('ix_webhook_deliveries_status_next_attempt_at', 'webhook_deliveries',
                    ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_endpoint_subject_seq', 'webhook_deliveries',
                    ['endpoint_id', 'subject_id', 'event_seq'])
    op.create_index('ix_webhook_deliveries_endpoint_id_id', 'webhook_deliveries',
                    ['endpoint_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_endpoint_id_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_endpoint_subject_seq', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_status_next_attempt_at',
                  table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhook_endpoints_team_id_id', table_name='webhook_endpoints')
    op.drop_table('webhook_endpoints')
    op.drop_index('ix_outbox_events_undispatched_subject', table_name='outbox_events')
    op.drop_index('ix_outbox_events_undispatched_seq', table_name='outbox_events')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_column('outbox_events', 'seq')  # drops the owned sequence too
    else:
        op.execute('DROP TRIGGER IF EXISTS outbox_events_seq')
        with op.batch_alter_table('outbox_events') as batch_op:
            batch_op.drop_column('seq')

