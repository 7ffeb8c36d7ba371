from django.db import migrations

# (index name, table, indexed expression): the expressions the free-text filter
# compares with LIKE (threads/selectors.py), as Django writes them for icontains on
# a CharField and contains on a TextField.
TRIGRAM_INDEXES = [
    ("thread_id_trgm", "threads_thread", 'UPPER("id"::text)'),
    ("thread_agent_name_trgm", "threads_thread", 'UPPER("agent_name"::text)'),
    ("session_search_text_trgm", "threads_session", '"search_text"'),
]


def trigram_indexes_create(apps, schema_editor):
    """Create the pg_trgm extension and the trigram GIN indexes; nothing on other databases."""
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13 and later): a role with CREATE
    # on the database may create it without being a superuser.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, expression in TRIGRAM_INDEXES:
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS %s ON %s USING gin ((%s) gin_trgm_ops)" % (name, table, expression)
        )


def trigram_indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _table, _expression in TRIGRAM_INDEXES:
        schema_editor.execute("DROP INDEX IF EXISTS %s" % name)


class Migration(migrations.Migration):
    # Trigram GIN indexes let PostgreSQL answer the free-text filter (LIKE '%text%')
    # from an index instead of reading every thread. The extension is left installed
    # on reverse, because other objects may use it. NOTE: plain CREATE INDEX locks
    # writes to the table while it builds; on a large install, run the sync paused.

    dependencies = [
        ("threads", "0007_usage_session_day_rollups"),
    ]

    operations = [
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop),
    ]
