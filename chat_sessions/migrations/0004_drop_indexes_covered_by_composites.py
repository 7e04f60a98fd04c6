"""Drop three foreign-key indexes that a composite index starting with the same column covers.

Each was one more index to write on every turn (the session's counters, two messages) and on every
write of a streaming answer, and no query needs it: `chat_sess_list_idx`, `chat_msg_order_unique`
and `chat_tag_unique_per_session` serve the same lookups.

Not a plain `AlterField(db_index=False)`: on PostgreSQL that drops every index on the column alone,
and `chat_msg_one_streaming_unique` (one streaming answer per session) is one. Only the plain,
non-unique single-column index is dropped here.
"""

import django.db.models.deletion
from django.db import migrations, models

from chat_sessions.conf import chat_settings

COVERED = (("chatsession", "container"), ("chatsessiontag", "session"), ("sessionchatmessage", "session"))


def _fk_indexes_drop(apps, schema_editor):
    connection, quote = schema_editor.connection, schema_editor.quote_name
    for model_name, field_name in COVERED:
        model = apps.get_model("chat_sessions", model_name)
        table, column = model._meta.db_table, model._meta.get_field(field_name).column
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, table)
        for name, facts in constraints.items():
            plain = facts["index"] and not facts["unique"] and not facts["primary_key"]
            if plain and facts["columns"] == [column]:
                schema_editor.execute(schema_editor.sql_delete_index % {"table": quote(table), "name": quote(name)})


def _fk_indexes_create(apps, schema_editor):
    for model_name, field_name in COVERED:
        model = apps.get_model("chat_sessions", model_name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field(field_name)]))


class Migration(migrations.Migration):
    dependencies = [
        ("chat_sessions", "0003_one_streaming_answer_per_session"),
        migrations.swappable_dependency(chat_settings.CONTAINER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(_fk_indexes_drop, _fk_indexes_create)],
            state_operations=[
                migrations.AlterField(
                    model_name="chatsession",
                    name="container",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chat_sessions",
                        to=chat_settings.CONTAINER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="chatsessiontag",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tag_set",
                        to="chat_sessions.chatsession",
                    ),
                ),
                migrations.AlterField(
                    model_name="sessionchatmessage",
                    name="session",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="chat_sessions.chatsession",
                    ),
                ),
            ],
        ),
    ]
