-- A read-only login role (Grafana's): SELECT on every table of schema public, present and future; nothing else.
-- Plain SQL, run as the owner of the tables (the database's superuser in the lab) in the benchlab database,
-- after 001_schema.sql. Its two parameters are session settings, set first:
--   SELECT set_config('benchlab.readonly_role', 'benchlab_grafana', false),
--          set_config('benchlab.readonly_password', '...', false);
-- schema/002_grafana_role.sh sets them from GRAFANA_DB_USER and GRAFANA_DB_PASSWORD at the container's first
-- start; tests/integration/test_readonly_role.py runs this file with psycopg2. Running it again updates the
-- password and the grants. It sits in a folder so that the postgres image does not run it on its own.

DO $readonly$
DECLARE
    role_name     text := current_setting('benchlab.readonly_role', true);
    role_password text := current_setting('benchlab.readonly_password', true);
    verb          text;
BEGIN
    IF coalesce(role_name, '') = '' OR coalesce(role_password, '') = '' THEN
        RAISE EXCEPTION 'set benchlab.readonly_role and benchlab.readonly_password before running readonly.sql';
    END IF;
    verb := CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN 'ALTER' ELSE 'CREATE' END;
    EXECUTE format(
        '%s ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS PASSWORD %L',
        verb, role_name, role_password
    );
    -- A second guard: its transactions are read-only unless it turns that off (the grants below still hold).
    EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', role_name);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), role_name);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', role_name);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', role_name);
    -- Tables created later by the role running this file (the store creates none today; a migration might).
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON TABLES TO %I', current_user, role_name
    );
    -- What PUBLIC (so every role) may do beyond that: create in schema public (Postgres < 15 allows it) and
    -- create temporary tables. Only the table owner (a superuser in the lab) writes to the store.
    REVOKE CREATE ON SCHEMA public FROM PUBLIC;
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END
$readonly$;

-- The password is not left in the session.
RESET benchlab.readonly_password;
