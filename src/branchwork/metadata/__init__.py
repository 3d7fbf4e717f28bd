"""The metadata store: schema, migrations, recorder and queries."""
