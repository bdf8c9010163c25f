#!/usr/bin/env bash
# Creates Grafana's read-only role (schema/roles/readonly.sql) in the benchlab database. The postgres image runs
# this from /docker-entrypoint-initdb.d after 001_schema.sql, on the first start only (an empty data volume).
# Environment: GRAFANA_DB_PASSWORD (required), GRAFANA_DB_USER (default benchlab_grafana), and the image's
# POSTGRES_USER and POSTGRES_DB; psql's PG* variables (PGHOST, ...) apply too. Works executed or sourced.
set -eo pipefail

: "${GRAFANA_DB_PASSWORD:?GRAFANA_DB_PASSWORD must be set (password of the read-only role of Grafana)}"
readonly_sql="$(dirname "${BASH_SOURCE[0]}")/roles/readonly.sql"

# psql quotes the values (:'name'); \gset keeps the password out of the output.
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    --set=role_name="${GRAFANA_DB_USER:-benchlab_grafana}" --set=role_password="$GRAFANA_DB_PASSWORD" \
    --set=readonly_sql="$readonly_sql" <<'SQL'
SELECT set_config('benchlab.readonly_role', :'role_name', false) AS ignored_role,
       set_config('benchlab.readonly_password', :'role_password', false) AS ignored_password \gset
\i :readonly_sql
SQL
