"""Database access: the schema, the engine and the register's queries."""
