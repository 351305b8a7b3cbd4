#!/usr/bin/env bash
# One command for a newcomer on a fresh Debian machine: install what trawl
# and its tests need, build trawl in release mode, install the binary, and
# start it on a sample capture so you see what it does.
#
#   bash scripts/setup.sh          # set up, then show trawl on a sample capture
#   bash scripts/setup.sh --tap    # set up, then start `trawl tap` (live capture)
#
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v tshark >/dev/null || need_apt+=(tshark)
command -v tcpdump >/dev/null || need_apt+=(tcpdump)
command -v ip >/dev/null || need_apt+=(iproute2)
[ -x /usr/bin/time ] || need_apt+=(time)
# dig: the DNS client of the tap API test (crates/cli/tests/tap.rs).
command -v dig >/dev/null || need_apt+=(dnsutils)
# The scenario lab (lab/README.md): dnsmasq as cluster DNS, PostgreSQL as catalogue-db.
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v nghttpd >/dev/null || [ -x /usr/sbin/nghttpd ] || need_apt+=(nghttp2-server)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v mariadb-install-db >/dev/null || need_apt+=(mariadb-server)
# The TLS and AMQP live tests: openssl s_server/s_client and RabbitMQ.
command -v openssl >/dev/null || need_apt+=(openssl)
command -v rabbitmq-server >/dev/null || need_apt+=(rabbitmq-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing ${need_apt[*]} with apt-get."
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# moto's S3-compatible server, for the snapshot upload tests.
command -v moto_server >/dev/null || python3 -m pip install -q 'moto[server]' || \
  echo "Could not install moto (pip); the S3 upload tests will be skipped."
# DuckDB, for the index tests and bench/query.sh that compare with it.
python3 -c 'import duckdb' 2>/dev/null || python3 -m pip install -q duckdb || \
  echo "Could not install duckdb (pip); the DuckDB agreement test will be skipped."
# The official MCP Python SDK, the client of the MCP end-to-end tests.
python3 -c 'import mcp.client.streamable_http' 2>/dev/null || python3 -m pip install -q mcp || \
  echo "Could not install mcp (pip); the MCP end-to-end tests will be skipped."
# The lab's Python services: PyYAML (scenario files) and pg8000 (PostgreSQL).
python3 -c 'import h2, grpc, websockets.sync.server' 2>/dev/null || python3 -m pip install -q h2 grpcio websockets || \
  echo "Could not install h2, grpcio and websockets (pip); the HTTP/2, gRPC and WebSocket live tests will be skipped."

python3 -c 'import yaml, pg8000' 2>/dev/null || python3 -m pip install -q pyyaml pg8000 || \
  echo "Could not install pyyaml and pg8000 (pip); the scenario lab tests will be skipped."
python3 -c 'import pymysql, mysql.connector' 2>/dev/null || python3 -m pip install -q pymysql mysql-connector-python || \
  echo "Could not install pymysql and mysql-connector-python (pip); the MySQL live test will be skipped."
python3 -c 'import pymongo, pika' 2>/dev/null || python3 -m pip install -q pymongo pika || \
  echo "Could not install pymongo and pika (pip); the MongoDB and AMQP live tests will be skipped."
if ! command -v cargo >/dev/null; then
  echo "cargo is missing: install Rust 1.95 or later (https://rustup.rs), then run this again." >&2
  exit 1
fi

cargo build --release -p trawl-cli -p trawl-lab
target=${CARGO_TARGET_DIR:-target}
bindir=${TRAWL_BIN_DIR:-$HOME/.local/bin}
mkdir -p "$bindir"
install -m 0755 "$target/release/trawl" "$target/release/trawl-lab" "$bindir/"
echo "Installed trawl and trawl-lab in $bindir."
case ":$PATH:" in *":$bindir:"*) ;; *) echo "Add $bindir to your PATH to run trawl by name." ;; esac

# A sample: synthetic HTTP/1.1 and DNS traffic, dissected.
sample=${TRAWL_SAMPLE:-/tmp/trawl-sample.pcap}
"$bindir/trawl-lab" gen-pcap --packets 2000 -o "$sample" >/dev/null
echo
echo "Dissecting a sample capture ($sample):"
"$bindir/trawl" dissect "$sample" | head -n 12
echo "…"
"$bindir/trawl" dissect "$sample" --format none --stats
echo
echo "Next: trawl dissect YOUR.pcap --format jsonl --stats"

if [ "${1:-}" = "--tap" ]; then
  data=${TRAWL_DATA:-$HOME/.local/share/trawl}
  echo
  echo "Starting trawl tap (all interfaces) into $data; Ctrl-C stops it."
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  exec $SUDO "$bindir/trawl" tap --data "$data"
fi
