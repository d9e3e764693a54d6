"""A contact's company belongs to the contact's team, enforced by one foreign key

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:30:00

``companies (team_id, id)`` becomes unique (it was a plain index on the same columns), so
on PostgreSQL ``contacts (team_id, company_id)`` can reference it: the database itself now
refuses a contact whose company is another team's, and every inserted contact costs one
foreign-key check instead of two (``team_id -> teams`` and ``company_id -> companies``).
Deleting a team still removes its contacts (team -> companies -> contacts, all cascading).
The cascade from a company finds its contacts through ``(team_id, company_id, id)``, so
the single-column ``company_id`` index goes; queries by company name the team too.
Measured: a 300,000-row COPY into ``contacts`` spends ~12% less PostgreSQL CPU
(docs/decisions/0015-import-write-cost.md).

SQLite keeps its two single-column foreign keys and the ``company_id`` index: changing a
foreign key there means rebuilding ``contacts`` and its FTS5 triggers, for little gain.
"""

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

PG_UPGRADE = [
    "ALTER TABLE contacts DROP CONSTRAINT fk_contacts_company_id_companies",
    "ALTER TABLE contacts DROP CONSTRAINT fk_contacts_team_id_teams",
    ("ALTER TABLE contacts ADD CONSTRAINT fk_contacts_team_id_company_id_companies "
     "FOREIGN KEY (team_id, company_id) REFERENCES companies (team_id, id) "
     "ON DELETE CASCADE"),
    "DROP INDEX ix_contacts_company_id",
]

PG_DOWNGRADE = [
    "CREATE INDEX ix_contacts_company_id ON contacts (company_id)",
    "ALTER TABLE contacts DROP CONSTRAINT fk_contacts_team_id_company_id_companies",
    ("ALTER TABLE contacts ADD CONSTRAINT fk_contacts_team_id_teams "
     "FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE CASCADE"),
    ("ALTER TABLE contacts ADD CONSTRAINT fk_contacts_company_id_companies "
     "FOREIGN KEY (company_id) REFERENCES companies (id) ON DELETE CASCADE"),
]


def upgrade() -> None:
    op.create_index("uq_companies_team_id_id", "companies", ["team_id", "id"], unique=True)
    op.drop_index("ix_companies_team_id_id", table_name="companies")
    if op.get_bind().dialect.name == "postgresql":
        for sql in PG_UPGRADE:
            op.execute(sql)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for sql in PG_DOWNGRADE:
            op.execute(sql)
    op.create_index("ix_companies_team_id_id", "companies", ["team_id", "id"])
    op.drop_index("uq_companies_team_id_id", table_name="companies")
