#!/usr/bin/env bash
# Start a local PostgreSQL (Debian's packages) for the collector's storage tests.
#
# Installs postgresql with apt-get if it is missing, starts a cluster on
# 127.0.0.1:5432 (pg_ctlcluster; no systemd needed), creates the role
# `auditagent` (LOGIN, CREATEDB: each test module makes its own database) and the
# database `auditagent_test`, and prints ONE line on stdout:
#   export AUDITAGENT_TEST_PG_URL=postgresql+psycopg://auditagent:auditagent@127.0.0.1:5432/auditagent_test
# Everything else goes to stderr, so `eval "$(bash .ci/start-postgres.sh)"` works.
# Idempotent: running it again with the cluster up only re-checks role and database.
set -euo pipefail
exec 3>&1 1>&2

# Run a command with only fds 0-2 open. A daemon it starts (the postmaster, or one a
# package's postinst starts) would otherwise inherit fd 3 - the write end of the
# caller's $(...) pipe - or any other pipe the CI runner holds, and keep it open: the
# caller's `eval "$(...)"` would then never return.
without_inherited_fds() {
  python3 -c 'import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], close_fds=True))' "$@"
}

PORT="${AUDITAGENT_PG_PORT:-5432}"
ROLE=auditagent
PASSWORD=auditagent
DB=auditagent_test

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "start-postgres: installing postgresql from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  without_inherited_fds apt-get install -y -qq postgresql >/dev/null
fi

VER="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VER main"; then
  echo "start-postgres: creating cluster $VER/main on port $PORT"
  pg_createcluster "$VER" main --port "$PORT" >/dev/null
fi
CLUSTER_PORT="$(pg_lsclusters -h | awk -v v="$VER" '$1==v && $2=="main" {print $3}')"
if [ "$CLUSTER_PORT" != "$PORT" ]; then
  pg_conftool "$VER" main set port "$PORT"
fi
# Loopback only; enough connections for two collectors plus tests.
CONF_D="/etc/postgresql/$VER/main/conf.d"
mkdir -p "$CONF_D"
printf "listen_addresses = '127.0.0.1'\nmax_connections = 200\n" > "$CONF_D/auditagent-test.conf"
pg_conftool "$VER" main remove listen_addresses 2>/dev/null || true

if ! pg_lsclusters -h | awk -v v="$VER" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  echo "start-postgres: starting cluster $VER/main"
  without_inherited_fds pg_ctlcluster "$VER" main start
fi

for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$PORT"; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT"

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -q -p $PORT -d postgres -tAc \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='$ROLE'")" != "1" ]; then
  psql_admin "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
else
  psql_admin "ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='$DB'")" != "1" ]; then
  psql_admin "CREATE DATABASE $DB OWNER $ROLE"
fi

echo "start-postgres: PostgreSQL $VER ready on 127.0.0.1:$PORT"
echo "export AUDITAGENT_TEST_PG_URL=postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB" >&3
