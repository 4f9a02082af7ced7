#!/bin/sh
# MariaDB's entrypoint (scripts/images' ska-sdp-mariadb and ska-sdp-tangodb), with the docker library image's
# conventions, so that the charts written for that image run this one:
#
#   docker-entrypoint.sh [mariadbd|mysqld] [OPTION...]   the server (options alone imply it)
#   docker-entrypoint.sh COMMAND...                      any other command, run as it is
#
# On the first start (no <datadir>/mysql) it makes the data folder (mariadb-install-db), starts the server
# without networking, sets the root password, creates the database and its user, runs the files of
# /docker-entrypoint-initdb.d (*.sql, *.sql.gz in the database, *.sh sourced), and stops the server. Then, and on
# every later start (the data folder is kept as it is), it execs mariadbd in the foreground. The environment,
# MARIADB_<X> or MYSQL_<X>, each also as <name>_FILE (read from that file):
#
#   ROOT_PASSWORD                 root's password (root@localhost, and root@ROOT_HOST); one of it,
#   ALLOW_EMPTY_ROOT_PASSWORD     (non-empty: root without a password) or
#   RANDOM_ROOT_PASSWORD          (non-empty: a random one, printed) is required
#   ROOT_HOST                     where root may connect from besides localhost (default %)
#   DATABASE, USER, PASSWORD      the database to create, and a user with every right on it
#   MARIADB_MYSQL_LOCALHOST_USER  non-empty: mysql@localhost, through the unix socket, with no rights
#
# A user `healthcheck` (no rights) is made for healthcheck.sh, its password in <datadir>/.my-healthcheck.cnf.
# Any user that can write the data folder runs it: the image's (65532), or a chart's runAsUser.
set -eu

log() { echo "$(date -u '+%Y-%m-%d %H:%M:%S') [entrypoint] $*" >&2; }
die() { log "error: $*"; exit 1; }

# From here on "$@" are the server's options.
case "${1:-}" in
  "" | -*) ;;
  mysqld | mariadbd) shift ;;
  *) exec "$@" ;;
esac
# Help and version need no data folder.
for arg in "$@"; do
  case "$arg" in
    -'?' | --help | -V | --version) exec mariadbd "$@" ;;
  esac
done

# setting NAME: MARIADB_NAME, else MYSQL_NAME, else the file MARIADB_NAME_FILE or MYSQL_NAME_FILE names.
setting() {
  eval "setting_value=\${MARIADB_$1:-\${MYSQL_$1:-}}"
  eval "setting_file=\${MARIADB_$1_FILE:-\${MYSQL_$1_FILE:-}}"
  if [ -z "$setting_value" ] && [ -n "$setting_file" ]; then
    setting_value=$(cat "$setting_file") || die "cannot read ${1}_FILE $setting_file"
  fi
  printf '%s' "$setting_value"
}
# SQL string literal and identifier contents.
quote() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
ident() { printf '%s' "$1" | sed -e 's/`/``/g'; }
random_password() { tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32; }

# The server's settings for these options (its configuration files included).
server_settings=$(mariadbd "$@" --verbose --help 2>&1) || die "mariadbd rejects the options $*: $server_settings"
# The variables' table follows a line of dashes; the help text above it has lines starting with these words too.
server_setting() {
  printf '%s\n' "$server_settings" | awk -v name="$1" '/^-----/ { table = 1; next } table && $1 == name { print $2; exit }'
}
datadir=$(server_setting datadir)
datadir=${datadir%/}
port=$(server_setting port)
socket=$(server_setting socket)
[ -n "$datadir" ] || die "mariadbd names no data folder"

if [ ! -d "$datadir/mysql" ]; then
  root_password=$(setting ROOT_PASSWORD)
  if [ -z "$root_password" ]; then
    if [ -n "$(setting RANDOM_ROOT_PASSWORD)" ]; then
      root_password=$(random_password)
      log "root's random password: $root_password"
    elif [ -z "$(setting ALLOW_EMPTY_ROOT_PASSWORD)" ]; then
      die "the data folder $datadir is new and no root password is given: set MARIADB_ROOT_PASSWORD" \
        "(or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD)"
    fi
  fi
  database=$(setting DATABASE)
  user=$(setting USER)
  password=$(setting PASSWORD)
  [ -z "$user" ] || [ -n "$password" ] || die "MARIADB_USER $user has no MARIADB_PASSWORD"
  root_host=$(setting ROOT_HOST)
  root_host=${root_host:-%}

  log "initialising the data folder $datadir"
  mkdir -p "$datadir"
  mariadb-install-db --datadir="$datadir" --rpm --auth-root-authentication-method=normal --skip-test-db \
    --skip-name-resolve "$@" --skip-log-bin >/dev/null || die "mariadb-install-db failed"

  # The server alone with this script: no network, a socket of its own.
  init=$(mktemp -d)
  mariadbd "$@" --datadir="$datadir" --skip-networking --socket="$init/mysqld.sock" --skip-log-bin &
  server=$!
  trap 'kill "$server" 2>/dev/null || true; rm -rf "$init"' EXIT
  printf '[client]\nuser=root\nsocket=%s\n' "$init/mysqld.sock" >"$init/root.cnf"
  sql() { mariadb --defaults-file="$init/root.cnf" --protocol=socket "$@"; }
  tries=0
  until sql -e 'SELECT 1' >/dev/null 2>&1; do
    kill -0 "$server" 2>/dev/null || die "the server stopped while starting"
    tries=$((tries + 1))
    [ "$tries" -lt 300 ] || die "the server did not start in 30 s"
    sleep 0.1
  done

  healthcheck_password=$(random_password)
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    # Only root@localhost stays of the accounts mariadb-install-db made.
    echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
    echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
    echo "ALTER USER root@localhost IDENTIFIED BY '$(quote "$root_password")';"
    if [ "$root_host" != localhost ]; then
      echo "CREATE USER 'root'@'$(quote "$root_host")' IDENTIFIED BY '$(quote "$root_password")';"
      echo "GRANT ALL ON *.* TO 'root'@'$(quote "$root_host")' WITH GRANT OPTION;"
      echo "GRANT PROXY ON ''@'%' TO 'root'@'$(quote "$root_host")' WITH GRANT OPTION;"
    fi
    for host in 127.0.0.1 ::1 localhost; do
      echo "CREATE USER healthcheck@'$host' IDENTIFIED BY '$healthcheck_password';"
    done
    if [ -n "${MARIADB_MYSQL_LOCALHOST_USER:-}" ]; then
      echo "CREATE USER mysql@localhost IDENTIFIED VIA unix_socket;"
    fi
    if [ -n "$database" ]; then
      echo "CREATE DATABASE IF NOT EXISTS \`$(ident "$database")\`;"
    fi
    if [ -n "$user" ]; then
      echo "CREATE USER '$(quote "$user")'@'%' IDENTIFIED BY '$(quote "$password")';"
      [ -z "$database" ] || echo "GRANT ALL ON \`$(ident "$database")\`.* TO '$(quote "$user")'@'%';"
    fi
  } | sql || die "the accounts and the database could not be created"
  # root has its password from here on.
  printf 'password=%s\n' "$root_password" >>"$init/root.cnf"
  printf '[mariadb-client]\nport=%s\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
    "$port" "$socket" "$healthcheck_password" >"$datadir/.my-healthcheck.cnf"
  chmod 600 "$datadir/.my-healthcheck.cnf"

  for file in /docker-entrypoint-initdb.d/*; do
    case "$file" in
      *.sql) log "running $file"; sql ${database:+"--database=$database"} <"$file" || die "$file failed" ;;
      *.sql.gz) log "running $file"; gunzip -c "$file" | sql ${database:+"--database=$database"} || die "$file failed" ;;
      *.sh)
        log "sourcing $file"
        # shellcheck source=/dev/null
        . "$file"
        ;;
      */\*) ;;
      *) log "ignoring $file" ;;
    esac
  done

  sql -e 'SHUTDOWN' || die "the server did not take SHUTDOWN"
  wait "$server" || die "the server failed while stopping"
  rm -rf "$init"
  trap - EXIT
  log "the data folder $datadir is ready"
fi

exec mariadbd "$@"
