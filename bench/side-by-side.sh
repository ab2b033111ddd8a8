#!/usr/bin/env bash
# Measures bonded against CNCF Distribution on this machine, in one run, with the same
# load generator: starts both on loopback ports with fresh data directories, measures the
# disk's fsync'd write speed for reference, runs bonded-bench, stops both.
#
#   bench/side-by-side.sh [bonded-bench flags...]      e.g. --rounds 5 --blob-mib 256
#   bench/side-by-side.sh --only admission            content trust's cost on bonded alone
#   BENCH_S3=1 bench/side-by-side.sh --blob-mib 64    both on S3: bonded --blob-store s3://,
#                                                     Distribution's own s3 driver, one
#                                                     moto server (BONDED_MOTO_SERVER or
#                                                     moto_server on PATH), a bucket each
#
# Needs: apt-get install -y docker-registry
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-registry >/dev/null || { echo "install CNCF Distribution: apt-get install -y docker-registry" >&2; exit 1; }
cargo build --release --bin bonded --bin bonded-bench >&2

work=$(mktemp -d /var/tmp/bonded-bench.XXXXXX)
cleanup() { kill "${bonded_pid:-}" "${dist_pid:-}" "${moto_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

bonded_addr=127.0.0.1:${BONDED_PORT:-5100}
dist_addr=127.0.0.1:${DIST_PORT:-5101}

# an admin token lets `--only admission` configure bonded's trust policy itself
export BONDED_ADMIN_TOKEN=${BONDED_ADMIN_TOKEN:-bench-$$-$RANDOM}
# --open: Distribution runs without authentication here, so bonded does too (the cost of
# logins is measured separately: docs/benchmarks.md)
# --max-signatures-per-subject 1000: the admission test measures a digest with 1,000
# signatures (the default keeps at most 100)
bonded_store=()
if [ -n "${BENCH_S3:-}" ]; then
  moto=${BONDED_MOTO_SERVER:-$(command -v moto_server || true)}
  [ -x "$moto" ] || { echo "BENCH_S3 needs moto_server: pip install 'moto[server]'" >&2; exit 1; }
  s3_port=${S3_PORT:-5102}
  "$moto" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$s3_port/" >/dev/null && break; sleep 0.1; done
  curl -fs -X PUT "http://127.0.0.1:$s3_port/bench-bonded" >/dev/null
  curl -fs -X PUT "http://127.0.0.1:$s3_port/bench-distribution" >/dev/null
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
  bonded_store=(--blob-store s3://bench-bonded/registry --s3-endpoint "http://127.0.0.1:$s3_port" --s3-allow-http)
fi
BONDED_LOG=warn target/release/bonded serve --open --addr "$bonded_addr" --data-dir "$work/bonded" \
  --max-signatures-per-subject 1000 "${bonded_store[@]}" >"$work/bonded.out" 2>"$work/bonded.err" &
bonded_pid=$!
if [ -n "${BENCH_S3:-}" ]; then
  sed -e "s#@ENDPOINT@#http://127.0.0.1:$s3_port#" -e "s#@ADDR@#$dist_addr#" bench/distribution-s3.yml >"$work/distribution.yml"
else
  sed -e "s#@ROOT@#$work/distribution#" -e "s#@ADDR@#$dist_addr#" bench/distribution.yml >"$work/distribution.yml"
fi
env -u AWS_CA_BUNDLE docker-registry serve "$work/distribution.yml" >"$work/dist.log" 2>&1 &
dist_pid=$!
for addr in "$bonded_addr" "$dist_addr"; do
  for _ in $(seq 100); do curl -fs "http://$addr/v2/" >/dev/null && break; sleep 0.1; done
  curl -fs "http://$addr/v2/" >/dev/null || { echo "registry at $addr did not start" >&2; cat "$work"/*.err "$work/dist.log" >&2; exit 1; }
done

echo "## Machine"
echo
echo "- $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
echo "- bonded $(git rev-parse --short HEAD 2>/dev/null || echo unknown); $(docker-registry --version 2>&1 | head -1)"
if [ -n "${BENCH_S3:-}" ]; then
  echo "- blobs: both on S3, one moto server ($("$(dirname "$moto")/pip" show moto 2>/dev/null | awk '/^Version/{print "moto " $2}')) on loopback, a bucket each"
fi
dd_out=$(dd if=/dev/zero of="$work/dd.bin" bs=1M count=1024 conv=fsync 2>&1 | tail -1)
rm -f "$work/dd.bin"
echo "- disk, 1 GiB written with dd conv=fsync on the data directory's filesystem: ${dd_out##*, }"

target/release/bonded-bench \
  --target "bonded=http://$bonded_addr" --pid "bonded=$bonded_pid" \
  --target "distribution=http://$dist_addr" --pid "distribution=$dist_pid" \
  --baseline distribution "$@"
