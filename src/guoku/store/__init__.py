"""Storage adapter: SQLAlchemy 2 tables, Alembic migrations, unit of work and repositories.

SQLite is the embedded default (one file per node); PostgreSQL is the production engine. Amounts
are BIGINT fen. Every business row carries its admdiv (tenant).
"""
