"""The SQL store: table models, engine and transactions, repository functions."""
