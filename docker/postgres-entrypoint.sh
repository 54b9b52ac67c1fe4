#!/bin/sh
# The entrypoint of docker/postgres.Dockerfile: on the first start, a cluster in $PGDATA with the
# user and database flowd (password from POSTGRES_PASSWORD; the socket in the container trusts, the
# network asks for the password); then PostgreSQL in the foreground, listening on every address.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U flowd --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U flowd flowd
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "postgres-entrypoint: made the cluster with the database flowd"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
