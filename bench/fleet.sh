#!/usr/bin/env bash
# bonded against itself on its other backends, side by side in one run on this machine,
# with bonded-bench:
#
#   bench/fleet.sh databases [bonded-bench flags...]   SQLite vs PostgreSQL (blobs on disk)
#   bench/fleet.sh replicas  [bonded-bench flags...]   1 vs 2 replicas on PostgreSQL + S3,
#                                                      each behind the same nginx
#
# Starts a PostgreSQL cluster (initdb in a temporary directory; Debian's postgresql), for
# `replicas` also moto's S3 server (BONDED_MOTO_SERVER or moto_server on PATH) and nginx
# (Debian's nginx-light) as the load balancer, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?databases or replicas}
shift
cargo build --release --bin bonded --bin bonded-bench >&2

work=$(mktemp -d /var/tmp/bonded-fleet.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort | tail -1)
as_pg=()
if [ "$(id -u)" = 0 ]; then chown postgres "$work"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -A trust -U bonded --no-sync >/dev/null
pg_port=${PG_PORT:-5110}
# Durable as a production server would be (fsync on): the database is what is measured.
"${as_pg[@]}" "$pgbin/postgres" -D "$work/pg" -p "$pg_port" -k "$work" \
  -c listen_addresses=127.0.0.1 -c max_connections=200 >"$work/pg.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do psql -h 127.0.0.1 -p "$pg_port" -U bonded -d postgres -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.1; done
db() { psql -h 127.0.0.1 -p "$pg_port" -U bonded -d postgres -qc "CREATE DATABASE $1" >/dev/null; echo "postgres://bonded@127.0.0.1:$pg_port/$1"; }

serve() { # name addr extra...
  local name=$1 addr=$2; shift 2
  BONDED_LOG=warn target/release/bonded serve --open --addr "$addr" --data-dir "$work/$name" \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  eval "pid_$name=$!"
  for _ in $(seq 100); do curl -fs "http://$addr/v2/" >/dev/null && return; sleep 0.1; done
  echo "bonded $name did not start" >&2; cat "$work/$name.err" >&2; exit 1
}

echo "## Machine"
echo
echo "- $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "- bonded $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $("$pgbin/postgres" --version)"

case "$mode" in
databases)
  serve sqlite 127.0.0.1:5111
  serve postgres 127.0.0.1:5112 --database-url "$(db bench)"
  echo "- both with blobs on the same disk; PostgreSQL on loopback, fsync on"
  old=()
  if [ -n "${OLD_BONDED:-}" ]; then
    # Another build of bonded on SQLite beside them (e.g. the commit before a change).
    BONDED_LOG=warn "$OLD_BONDED" serve --open --addr 127.0.0.1:5114 --data-dir "$work/old" \
      >"$work/old.out" 2>"$work/old.err" &
    pids+=($!)
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:5114/v2/" >/dev/null && break; sleep 0.1; done
    old=(--target "sqlite-before=http://127.0.0.1:5114" --pid "sqlite-before=$!")
    echo "- sqlite-before: $OLD_BONDED on SQLite"
  fi
  target/release/bonded-bench \
    --target "sqlite=http://127.0.0.1:5111" --pid "sqlite=$pid_sqlite" \
    --target "postgres=http://127.0.0.1:5112" --pid "postgres=$pid_postgres" \
    "${old[@]}" --baseline sqlite "$@"
  ;;
replicas)
  moto=${BONDED_MOTO_SERVER:-$(command -v moto_server || true)}
  [ -x "$moto" ] || { echo "replicas needs moto_server: pip install 'moto[server]'" >&2; exit 1; }
  s3_port=${S3_PORT:-5113}
  "$moto" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$s3_port/" >/dev/null && break; sleep 0.1; done
  curl -fs -X PUT "http://127.0.0.1:$s3_port/one" >/dev/null
  curl -fs -X PUT "http://127.0.0.1:$s3_port/two" >/dev/null
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
  s3() { echo --blob-store "s3://$1/r" --s3-endpoint "http://127.0.0.1:$s3_port" --s3-allow-http; }
  one=$(db one); two=$(db two)
  # shellcheck disable=SC2046
  serve one1 127.0.0.1:5121 --database-url "$one" $(s3 one)
  # shellcheck disable=SC2046
  serve two1 127.0.0.1:5122 --database-url "$two" $(s3 two)
  # shellcheck disable=SC2046
  serve two2 127.0.0.1:5123 --database-url "$two" $(s3 two)
  cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  proxy_http_version 1.1;
  upstream one { server 127.0.0.1:5121; keepalive 64; }
  upstream two { server 127.0.0.1:5122; server 127.0.0.1:5123; keepalive 64; }
  server { listen 127.0.0.1:5131; location / { proxy_pass http://one; proxy_set_header Connection ""; proxy_set_header Host \$http_host; } }
  server { listen 127.0.0.1:5132; location / { proxy_pass http://two; proxy_set_header Connection ""; proxy_set_header Host \$http_host; } }
}
NGINX
  nginx -c "$work/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  sleep 0.5
  echo "- each fleet: PostgreSQL (a database each, fsync on) + moto S3 (a bucket each) on loopback, behind one nginx worker"
  target/release/bonded-bench \
    --target "one-replica=http://127.0.0.1:5131" \
    --target "two-replicas=http://127.0.0.1:5132" \
    --baseline one-replica "$@"
  ;;
*) echo "mode is databases or replicas" >&2; exit 2 ;;
esac
