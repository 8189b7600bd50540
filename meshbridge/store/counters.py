"""The store's counters (schema ``m015``): the ``counts`` table, and the derived message columns
``overdue_open`` and ``owes``, kept by triggers in the transaction that changes a row, whatever
writes it (the store, an import, a bulk load).

``counts`` holds how many messages are in each (direction, route, state), how many expectations of
each (direction, kind) are open and how many of those the sweep has seen overdue, and how many
messages have one of those. On PostgreSQL each connection adds to its own row (``slot``: its
backend pid), so nodes never wait on one counter row; :meth:`~.sql.SQLStore.fold_counts` folds
those into slot 0 now and then. A message carries ``overdue_open`` (its expectations the sweep saw
overdue and still open) and ``owes`` (an open business ack we owe), so listings of either walk a
partial index in order. All of it is derived from the rows: an archive never carries it
(:data:`DERIVED_TABLES`, :data:`DERIVED_COLUMNS`), an import's rows make it anew through the triggers.
"""

from __future__ import annotations

from .dialects import Dialect

OWED_KIND = "bus-ack-owed"  # meshbridge.kinds.BUS_OWED (the schema does not import the pipeline)
# What the triggers keep: an archive carries none of it (:func:`~.moving.carried`)
DERIVED_TABLES = frozenset({"counts"})
DERIVED_COLUMNS = {"messages": frozenset({"overdue_open", "owes"})}


def counters(d: Dialect) -> list[str]:
    """The derived columns and the ``counts`` table, filled from the rows there are, and their triggers."""
    return [
        f"ALTER TABLE messages ADD COLUMN overdue_open {d.integer} NOT NULL DEFAULT 0",
        f"ALTER TABLE messages ADD COLUMN owes {d.integer} NOT NULL DEFAULT 0",
        "UPDATE messages SET overdue_open = (SELECT count(*) FROM expectations e WHERE e.message_id = messages.id "
        "AND e.met_at IS NULL AND e.overdue_at IS NOT NULL) WHERE id IN "
        "(SELECT message_id FROM expectations WHERE met_at IS NULL AND overdue_at IS NOT NULL)",
        "UPDATE messages SET owes = 1 WHERE id IN "
        f"(SELECT message_id FROM expectations WHERE kind = '{OWED_KIND}' AND met_at IS NULL)",
        f"""CREATE TABLE counts (
            counter TEXT NOT NULL,
            direction TEXT NOT NULL,
            route TEXT NOT NULL,
            term TEXT NOT NULL,
            slot {d.integer} NOT NULL,
            n {d.integer} NOT NULL,
            PRIMARY KEY (counter, direction, route, term, slot)
        )""",
        # counter: messages (term: state) | overdue_messages (term '') | open, overdue (term: expectation kind);
        # route '' for none (and for the expectation counters, which are by direction and kind only)
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'messages', direction, coalesce(route, ''), state, 0, count(*) FROM messages "
        "GROUP BY direction, coalesce(route, ''), state",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'overdue_messages', direction, coalesce(route, ''), '', 0, count(*) FROM messages "
        "WHERE overdue_open > 0 GROUP BY direction, coalesce(route, '')",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'open', coalesce(m.direction, ''), '', e.kind, 0, count(*) FROM expectations e "
        "LEFT JOIN messages m ON m.id = e.message_id WHERE e.met_at IS NULL GROUP BY coalesce(m.direction, ''), e.kind",
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT 'overdue', coalesce(m.direction, ''), '', e.kind, 0, count(*) FROM expectations e "
        "LEFT JOIN messages m ON m.id = e.message_id WHERE e.met_at IS NULL AND e.overdue_at IS NOT NULL "
        "GROUP BY coalesce(m.direction, ''), e.kind",
        *(_sqlite_counting() if d.name == "sqlite" else _postgresql_counting()),
    ]


def _bump(counter: str, direction: str, route: str, term: str, delta: str, when: str, source: str = "") -> str:
    """SQLite: add ``delta`` to one counter row when ``when`` holds (an upsert; slot 0)."""
    return (
        f"INSERT INTO counts (counter, direction, route, term, slot, n) SELECT '{counter}', {direction}, {route}, "
        f"{term}, 0, {delta} {source} WHERE {when} "
        "ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = n + excluded.n;"
    )


def _sqlite_counting() -> list[str]:
    """The triggers that keep ``counts``, ``overdue_open`` and ``owes`` on SQLite (one writer at a time: slot 0)."""

    def messages(row: str, sign: str) -> str:
        route = f"coalesce({row}.route, '')"
        return _bump("messages", f"{row}.direction", route, f"{row}.state", sign, "1") + _bump(
            "overdue_messages", f"{row}.direction", route, "''", sign, f"{row}.overdue_open > 0"
        )

    def expectations(delta_open: str, delta_swept: str, row: str) -> str:
        direction = f"coalesce((SELECT direction FROM messages WHERE id = {row}.message_id), '')"
        return (
            _bump("open", direction, "''", f"{row}.kind", delta_open, f"{delta_open} <> 0")
            + _bump("overdue", direction, "''", f"{row}.kind", delta_swept, f"{delta_swept} <> 0")
            + f"UPDATE messages SET overdue_open = overdue_open + {delta_swept} "
            f"WHERE id = {row}.message_id AND {delta_swept} <> 0;" + f"UPDATE messages SET owes = owes + {delta_open} "
            f"WHERE id = {row}.message_id AND {row}.kind = '{OWED_KIND}' AND {delta_open} <> 0;"
        )

    def is_open(row: str) -> str:
        return f"({row}.met_at IS NULL)"

    def is_swept(row: str) -> str:
        return f"({row}.met_at IS NULL AND {row}.overdue_at IS NOT NULL)"

    changed = (
        "OLD.direction IS NOT NEW.direction OR OLD.route IS NOT NEW.route OR OLD.state IS NOT NEW.state "
        "OR (OLD.overdue_open > 0) IS NOT (NEW.overdue_open > 0)"
    )
    opened, swept = is_open("NEW"), is_swept("NEW")
    was_opened, was_swept = is_open("OLD"), is_swept("OLD")
    return [
        f"CREATE TRIGGER messages_counted_insert AFTER INSERT ON messages BEGIN {messages('NEW', '1')} END",
        f"CREATE TRIGGER messages_counted_update AFTER UPDATE OF direction, route, state, overdue_open ON messages "
        f"WHEN {changed} BEGIN {messages('OLD', '-1')} {messages('NEW', '1')} END",
        f"CREATE TRIGGER messages_counted_delete AFTER DELETE ON messages BEGIN {messages('OLD', '-1')} END",
        "CREATE TRIGGER expectations_counted_insert AFTER INSERT ON expectations "
        f"BEGIN {expectations(opened, swept, 'NEW')} END",
        "CREATE TRIGGER expectations_counted_update AFTER UPDATE OF met_at, overdue_at ON expectations "
        f"WHEN {was_opened} IS NOT {opened} OR {was_swept} IS NOT {swept} BEGIN "
        f"{expectations(f'({opened} - {was_opened})', f'({swept} - {was_swept})', 'NEW')} END",
        "CREATE TRIGGER expectations_counted_delete AFTER DELETE ON expectations "
        f"BEGIN {expectations(f'(-{was_opened})', f'(-{was_swept})', 'OLD')} END",
    ]


def _postgresql_counting() -> list[str]:
    """The same on PostgreSQL: each connection counts in its own row (slot: its backend pid).

    Inserts and deletes count once per statement, by group (transition tables): a bulk load or an
    import does not update one counter row once per message, which in one transaction leaves a
    version per update for the next one to step over (quadratic). Updates count per row."""
    return [
        "CREATE FUNCTION meshbridge_count(c TEXT, d TEXT, r TEXT, t TEXT, delta BIGINT) RETURNS void "
        "LANGUAGE sql AS $$ INSERT INTO counts (counter, direction, route, term, slot, n) "
        "VALUES (c, d, r, t, pg_backend_pid(), delta) ON CONFLICT (counter, direction, route, term, slot) "
        "DO UPDATE SET n = counts.n + excluded.n $$",
        """CREATE FUNCTION messages_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM meshbridge_count('messages', OLD.direction, coalesce(OLD.route, ''), OLD.state, -1);
            IF OLD.overdue_open > 0 THEN
                PERFORM meshbridge_count('overdue_messages', OLD.direction, coalesce(OLD.route, ''), '', -1);
            END IF;
            PERFORM meshbridge_count('messages', NEW.direction, coalesce(NEW.route, ''), NEW.state, 1);
            IF NEW.overdue_open > 0 THEN
                PERFORM meshbridge_count('overdue_messages', NEW.direction, coalesce(NEW.route, ''), '', 1);
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER messages_counted_update AFTER UPDATE OF direction, route, state, overdue_open ON messages "
        "FOR EACH ROW WHEN (OLD.direction IS DISTINCT FROM NEW.direction OR OLD.route IS DISTINCT FROM NEW.route "
        "OR OLD.state IS DISTINCT FROM NEW.state OR (OLD.overdue_open > 0) <> (NEW.overdue_open > 0)) "
        "EXECUTE FUNCTION messages_counted()",
        # rows added (or removed): the transition table ``changed``, counted by group in one statement
        """CREATE FUNCTION messages_counted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sign INT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
        BEGIN
            INSERT INTO counts (counter, direction, route, term, slot, n)
            SELECT 'messages', direction, coalesce(route, ''), state, pg_backend_pid(), sign * count(*)
            FROM changed GROUP BY direction, coalesce(route, ''), state
            UNION ALL
            SELECT 'overdue_messages', direction, coalesce(route, ''), '', pg_backend_pid(), sign * count(*)
            FROM changed WHERE overdue_open > 0 GROUP BY direction, coalesce(route, '')
            ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;
            RETURN NULL;
        END $$""",
        *(
            f"CREATE TRIGGER messages_counted_{op.lower()} AFTER {op} ON messages REFERENCING {age} TABLE AS changed "
            "FOR EACH STATEMENT EXECUTE FUNCTION messages_counted_rows()"
            for op, age in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
        *_postgresql_expectations(),
    ]


def _postgresql_expectations() -> list[str]:
    """PostgreSQL: the expectations' triggers (open and overdue counters, ``owes``, ``overdue_open``):
    updates per row, inserts and deletes per statement by group."""
    return [
        f"""CREATE FUNCTION expectations_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            was_open INT := (OLD.met_at IS NULL)::INT;
            was_swept INT := (OLD.met_at IS NULL AND OLD.overdue_at IS NOT NULL)::INT;
            is_open INT := (NEW.met_at IS NULL)::INT;
            is_swept INT := (NEW.met_at IS NULL AND NEW.overdue_at IS NOT NULL)::INT;
            dir TEXT;
        BEGIN
            IF is_open = was_open AND is_swept = was_swept THEN
                RETURN NULL;
            END IF;
            SELECT direction INTO dir FROM messages WHERE id = NEW.message_id;
            IF is_open <> was_open THEN
                PERFORM meshbridge_count('open', coalesce(dir, ''), '', NEW.kind, is_open - was_open);
                IF NEW.kind = '{OWED_KIND}' THEN
                    UPDATE messages SET owes = owes + is_open - was_open WHERE id = NEW.message_id;
                END IF;
            END IF;
            IF is_swept <> was_swept THEN
                PERFORM meshbridge_count('overdue', coalesce(dir, ''), '', NEW.kind, is_swept - was_swept);
                UPDATE messages SET overdue_open = overdue_open + is_swept - was_swept WHERE id = NEW.message_id;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER expectations_counted AFTER UPDATE OF met_at, overdue_at ON expectations "
        "FOR EACH ROW EXECUTE FUNCTION expectations_counted()",
        # (each message's direction and flags by its primary key, whatever the number of rows: no plan
        # made for a bulk load's thousands is ever reused for one row)
        f"""CREATE FUNCTION expectations_counted_rows() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            sign INT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
            ident TEXT; owes_n BIGINT; swept_n BIGINT;
        BEGIN
            INSERT INTO counts (counter, direction, route, term, slot, n)
            SELECT counter, direction, '', kind, pg_backend_pid(), sign * count(*) FROM (
                SELECT c.counter, c.kind, coalesce((SELECT direction FROM messages WHERE id = c.message_id), '')
                FROM (SELECT 'open' AS counter, message_id, kind FROM changed WHERE met_at IS NULL
                      UNION ALL
                      SELECT 'overdue', message_id, kind FROM changed WHERE met_at IS NULL AND overdue_at IS NOT NULL) c
            ) AS e (counter, kind, direction)
            GROUP BY counter, direction, kind
            ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;
            FOR ident, owes_n, swept_n IN
                SELECT message_id, count(*) FILTER (WHERE kind = '{OWED_KIND}'),
                    count(*) FILTER (WHERE overdue_at IS NOT NULL)
                FROM changed WHERE met_at IS NULL AND (kind = '{OWED_KIND}' OR overdue_at IS NOT NULL)
                GROUP BY message_id
            LOOP
                UPDATE messages SET owes = owes + sign * owes_n, overdue_open = overdue_open + sign * swept_n
                WHERE id = ident;
            END LOOP;
            RETURN NULL;
        END $$""",
        *(
            f"CREATE TRIGGER expectations_counted_{op.lower()} AFTER {op} ON expectations "
            f"REFERENCING {age} TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION expectations_counted_rows()"
            for op, age in (("INSERT", "NEW"), ("DELETE", "OLD"))
        ),
    ]


# -- m016: the same counts, written for less on PostgreSQL ------------------------------------------


def counting_in_place(d: Dialect) -> list[str]:
    """PostgreSQL's per-row triggers (messages and expectations updated) rewritten to count the same
    for less: their upserts written in the trigger (a call of the SQL function ``meshbridge_count``
    planned its upsert anew each time, a third of a state change's cost), one statement for the two
    rows a move from one state to another changes, and nothing for rows it would leave as they are.
    SQLite's triggers stay as they are (their upserts cost little next to the trigger itself)."""
    if d.name != "postgresql":
        return []
    return [
        _pg_messages_counted(),
        _pg_expectations_counted(),
        "DROP FUNCTION meshbridge_count(TEXT, TEXT, TEXT, TEXT, BIGINT)",
    ]


def _pg_add(*rows: tuple[str, str, str, str, str]) -> str:
    """PostgreSQL: add to counter rows of this connection's slot, each ``(counter, direction, route,
    term, delta)`` (SQL expressions), in one upsert: the rows must be distinct (one statement may not
    change a row twice)."""
    values = ", ".join(f"({c}, {d}, {r}, {t}, pg_backend_pid(), {n})" for c, d, r, t, n in rows)
    return (
        f"INSERT INTO counts (counter, direction, route, term, slot, n) VALUES {values} "
        "ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;"
    )


def _pg_key(row: str) -> tuple[str, str]:
    return f"{row}.direction", f"coalesce({row}.route, '')"


def _pg_messages_counted() -> str:
    """PostgreSQL: a message moved to another (direction, route, state), or into or out of the overdue:
    the counter rows it leaves and joins, none it stays in."""
    left, joined = ("'messages'", *_pg_key("OLD"), "OLD.state", "-1"), ("'messages'", *_pg_key("NEW"), "NEW.state", "1")
    moved = _pg_add(left, joined)
    flag = "CASE WHEN NEW.overdue_open > 0 THEN 1 ELSE -1 END"
    return f"""CREATE OR REPLACE FUNCTION messages_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (OLD.direction, coalesce(OLD.route, ''), OLD.state)
                    IS DISTINCT FROM (NEW.direction, coalesce(NEW.route, ''), NEW.state) THEN
                {moved}
            END IF;
            IF (OLD.direction, coalesce(OLD.route, '')) IS DISTINCT FROM (NEW.direction, coalesce(NEW.route, '')) THEN
                IF OLD.overdue_open > 0 THEN
                    {_pg_add(("'overdue_messages'", *_pg_key("OLD"), "''", "-1"))}
                END IF;
                IF NEW.overdue_open > 0 THEN
                    {_pg_add(("'overdue_messages'", *_pg_key("NEW"), "''", "1"))}
                END IF;
            ELSIF (OLD.overdue_open > 0) <> (NEW.overdue_open > 0) THEN
                {_pg_add(("'overdue_messages'", *_pg_key("NEW"), "''", flag))}
            END IF;
            RETURN NULL;
        END $$"""


def _pg_expectations_counted() -> str:
    """PostgreSQL: an expectation met, reopened or seen overdue: its open and overdue counters (one
    upsert of the one or two that change) and its message's ``owes`` and ``overdue_open`` (one update)."""
    opened, swept = "(is_open - was_open)", "(is_swept - was_swept)"
    counted = (
        "INSERT INTO counts (counter, direction, route, term, slot, n) "
        "SELECT v.counter, coalesce(dir, ''), '', NEW.kind, pg_backend_pid(), v.n "
        f"FROM (VALUES ('open', {opened}), ('overdue', {swept})) AS v (counter, n) WHERE v.n <> 0 "
        "ON CONFLICT (counter, direction, route, term, slot) DO UPDATE SET n = counts.n + excluded.n;"
    )
    # (in parentheses: plpgsql's IF reads up to the first THEN outside them)
    owed = f"(CASE WHEN NEW.kind = '{OWED_KIND}' THEN {opened} ELSE 0 END)"
    return f"""CREATE OR REPLACE FUNCTION expectations_counted() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            was_open INT := (OLD.met_at IS NULL)::INT;
            was_swept INT := (OLD.met_at IS NULL AND OLD.overdue_at IS NOT NULL)::INT;
            is_open INT := (NEW.met_at IS NULL)::INT;
            is_swept INT := (NEW.met_at IS NULL AND NEW.overdue_at IS NOT NULL)::INT;
            dir TEXT;
        BEGIN
            IF is_open = was_open AND is_swept = was_swept THEN
                RETURN NULL;
            END IF;
            SELECT direction INTO dir FROM messages WHERE id = NEW.message_id;
            {counted}
            IF {swept} <> 0 OR {owed} <> 0 THEN
                UPDATE messages SET owes = owes + {owed}, overdue_open = overdue_open + {swept}
                WHERE id = NEW.message_id;
            END IF;
            RETURN NULL;
        END $$"""
