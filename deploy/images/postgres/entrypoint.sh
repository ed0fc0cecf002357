#!/usr/bin/env bash
# Entrypoint of checkout-saga/postgres: on an empty data directory, initdb with the
# superuser's password, run /docker-entrypoint-initdb.d/* against a server that listens on
# its socket only (nobody can connect before the roles exist), stop it; then run the command
# (`postgres ...`) in the foreground as PID 1.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-${POSTGRES_USER}}

if [[ ${1:-} == -* ]]; then
  set -- postgres "$@" # `docker run IMAGE -c x=y`, as the postgres image accepts
fi

if [[ ${1:-} == postgres && ! -s ${PGDATA}/PG_VERSION ]]; then
  if [[ -z ${POSTGRES_PASSWORD:-} && ${POSTGRES_HOST_AUTH_METHOD:-} != trust ]]; then
    echo "postgres: POSTGRES_PASSWORD is not set; set it (the superuser's password), or" \
      "POSTGRES_HOST_AUTH_METHOD=trust to let anyone in without one" >&2
    exit 1
  fi
  echo "postgres: initialising ${PGDATA}" >&2
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-unused}" >"${pwfile}"
  # C.UTF-8 is built into glibc: no locales package needed.
  initdb -D "${PGDATA}" -U "${POSTGRES_USER}" --pwfile="${pwfile}" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "${pwfile}"
  echo "listen_addresses = '*'" >>"${PGDATA}/postgresql.conf"
  echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"${PGDATA}/pg_hba.conf"

  pg_ctl -D "${PGDATA}" -w -t 60 -o "-c listen_addresses='' -c unix_socket_directories=/var/run/postgresql" \
    start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 -X -q -h /var/run/postgresql -U "${POSTGRES_USER}")
  if [[ ${POSTGRES_DB} != postgres ]]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE \"${POSTGRES_DB}\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case ${f} in
      *.sql) echo "postgres: running ${f}" >&2; "${psql[@]}" -d "${POSTGRES_DB}" -f "${f}" ;;
      *.sh) echo "postgres: sourcing ${f}" >&2; # shellcheck disable=SC1090
        source "${f}" ;;
      *) if [[ -e ${f} ]]; then echo "postgres: ignoring ${f}" >&2; fi ;;
    esac
  done
  pg_ctl -D "${PGDATA}" -m fast -w stop >/dev/null
  echo "postgres: initialised; starting" >&2
fi

exec "$@"
