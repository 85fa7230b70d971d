"""search chunks: the lexical index of customer history (SQLite FTS5 or PostgreSQL full-text)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 17:31:15.086655
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chunk_id", sa.String(length=96), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("record_kind", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chunk_id"),
    )
    with op.batch_alter_table("search_chunks", schema=None) as batch_op:
        batch_op.create_index("ix_search_chunks_account", ["workspace_id", "account_id"], unique=False)
        batch_op.create_index("ix_search_chunks_record", ["workspace_id", "record_kind", "record_id"], unique=False)
    _create_full_text_index()


def _create_full_text_index() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE search_fts USING fts5(text, content='search_chunks', content_rowid='id', "
            "tokenize='porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER search_chunks_ai AFTER INSERT ON search_chunks BEGIN "
            "INSERT INTO search_fts(rowid, text) VALUES (new.id, new.text); END"
        )
        op.execute(
            "CREATE TRIGGER search_chunks_ad AFTER DELETE ON search_chunks BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
        )
        op.execute(
            "CREATE TRIGGER search_chunks_au AFTER UPDATE ON search_chunks BEGIN "
            "INSERT INTO search_fts(search_fts, rowid, text) VALUES ('delete', old.id, old.text); "
            "INSERT INTO search_fts(rowid, text) VALUES (new.id, new.text); END"
        )
    elif dialect == "postgresql":
        op.execute("CREATE INDEX ix_search_chunks_fts ON search_chunks USING gin (to_tsvector('english', text))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS search_fts")
    with op.batch_alter_table("search_chunks", schema=None) as batch_op:
        batch_op.drop_index("ix_search_chunks_record")
        batch_op.drop_index("ix_search_chunks_account")

    op.drop_table("search_chunks")
