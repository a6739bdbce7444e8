"""Storage: the engine, the tables, migrations, and one module of queries per aggregate."""
