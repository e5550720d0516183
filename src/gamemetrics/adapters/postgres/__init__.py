"""PostgreSQL: the embedded server, connection pools and schema migrations."""
