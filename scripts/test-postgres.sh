# Sourced by scripts/test.sh: a PostgreSQL server for the fleet store's tests.
#
# MICRONODE_TEST_DATABASE_URL, when set, names a server to use (any database on it; tests
# create and drop databases of their own). Otherwise a throwaway cluster is made in a
# temporary directory on a free loopback port, with Debian's PostgreSQL (installed if missing),
# and stopped and deleted when the tests end.

start_test_postgres() {
  if [ -n "${MICRONODE_TEST_DATABASE_URL:-}" ]; then
    echo "using the PostgreSQL server given by MICRONODE_TEST_DATABASE_URL"
    return 0
  fi
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
  export MICRONODE_PG_BIN="$bin"
  TEST_PG_DIR="$(mktemp -d /tmp/micronode-pg.XXXXXX)"
  local port
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # initdb refuses to run as root: as root, the cluster belongs to Debian's postgres user.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$TEST_PG_DIR"
    as=(runuser -u postgres --)
  fi
  TEST_PG_AS=("${as[@]}")
  "${as[@]}" "$bin/initdb" -D "$TEST_PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$TEST_PG_DIR/initdb.log" 2>&1 \
    || { cat "$TEST_PG_DIR/initdb.log"; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$TEST_PG_DIR/data" -l "$TEST_PG_DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $TEST_PG_DIR -c max_connections=300" start >/dev/null \
    || { cat "$TEST_PG_DIR/server.log"; return 1; }
  export MICRONODE_TEST_DATABASE_URL="host=127.0.0.1 port=$port user=postgres dbname=postgres"
  echo "a throwaway PostgreSQL cluster on 127.0.0.1:$port ($("$bin/postgres" --version))"
}

stop_test_postgres() {
  if [ -n "${TEST_PG_DIR:-}" ] && [ -d "$TEST_PG_DIR" ]; then
    "${TEST_PG_AS[@]}" "$MICRONODE_PG_BIN/pg_ctl" -D "$TEST_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$TEST_PG_DIR"
  fi
}
