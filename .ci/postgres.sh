#!/usr/bin/env bash
# Install (if missing) and start a local PostgreSQL server for leadrank's store and API tests.
#
# Run as root on Debian/Ubuntu with apt access. Idempotent: a second run reuses the
# running server, the user and the database. The last line of stdout is
#   DATABASE_URL=postgresql+psycopg2://USER:PASSWORD@127.0.0.1:PORT/DB
# so CI can do: eval "$(.ci/postgres.sh | tail -n 1)" and export LEADRANK_TEST_POSTGRES_URL.
#
# Environment (optional): PG_USER (leadrank), PG_PASSWORD (leadrank), PG_DB (leadrank_test),
# PG_PORT (5432).
set -euo pipefail

PG_USER="${PG_USER:-leadrank}"
PG_PASSWORD="${PG_PASSWORD:-leadrank}"
PG_DB="${PG_DB:-leadrank_test}"
PG_PORT="${PG_PORT:-5432}"

log() { echo "postgres.sh: $*" >&2; }

if ! command -v pg_lsclusters >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    log "installing the postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi

VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
CLUSTER="main"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VERSION $CLUSTER"; then
    log "creating cluster $VERSION/$CLUSTER"
    pg_createcluster "$VERSION" "$CLUSTER" --port "$PG_PORT" >&2
fi

STATUS="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $4}')"
PORT="$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1==v && $2==c {print $3}')"
if [ "$STATUS" != "online" ]; then
    log "starting cluster $VERSION/$CLUSTER on 127.0.0.1:$PORT"
    pg_ctlcluster "$VERSION" "$CLUSTER" start -- -o "-c listen_addresses=127.0.0.1" >&2 \
        || pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

for _ in $(seq 1 30); do
    if su postgres -c "pg_isready -q -h 127.0.0.1 -p $PORT"; then break; fi
    sleep 1
done
su postgres -c "pg_isready -h 127.0.0.1 -p $PORT" >&2

psql_admin() { su postgres -c "psql -p $PORT -v ON_ERROR_STOP=1 -qtA -c \"$1\""; }

if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" != "1" ]; then
    log "creating user $PG_USER"
    psql_admin "CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != "1" ]; then
    log "creating database $PG_DB"
    psql_admin "CREATE DATABASE $PG_DB OWNER $PG_USER"
fi

echo "DATABASE_URL=postgresql+psycopg2://$PG_USER:$PG_PASSWORD@127.0.0.1:$PORT/$PG_DB"
