#!/bin/sh
# MariaDB's health checks with the docker library image's options (the staging chart's probes run
# `healthcheck.sh --connect --innodb_initialized`); every check given must pass:
#
#   --connect             the server accepts TCP connections (a refused login still counts: it answered)
#   --innodb_initialized  InnoDB is up (a query as the `healthcheck` user docker-entrypoint.sh made)
#   --datadir=DIR         where .my-healthcheck.cnf (that user's password, the port, the socket) is; default
#                         /var/lib/mysql
set -eu
datadir=/var/lib/mysql
checks=""
for arg in "$@"; do
  case "$arg" in
    --datadir=*) datadir=${arg#--datadir=} ;;
    --connect | --innodb_initialized) checks="$checks ${arg#--}" ;;
    *) echo "healthcheck.sh: unknown option $arg (--connect, --innodb_initialized, --datadir=DIR)" >&2; exit 2 ;;
  esac
done
[ -n "$checks" ] || checks=connect
cnf=$datadir/.my-healthcheck.cnf
client() {
  if [ -r "$cnf" ]; then
    mariadb --defaults-extra-file="$cnf" "$@"
  else
    mariadb --no-defaults "$@"
  fi
}
for check in $checks; do
  case "$check" in
    connect)
      if client -h localhost --protocol=tcp -e 'SELECT 1' 2>&1 | grep -qF "Can't connect"; then
        echo "healthcheck.sh: the server does not accept connections" >&2
        exit 1
      fi
      ;;
    innodb_initialized)
      engine=$(client --skip-column-names -e "SELECT 1 FROM information_schema.ENGINES
        WHERE engine = 'innodb' AND support IN ('YES', 'DEFAULT', 'ENABLED')" 2>&1) || true
      if [ "$engine" != 1 ]; then
        echo "healthcheck.sh: InnoDB is not initialised: $engine" >&2
        exit 1
      fi
      ;;
  esac
done
