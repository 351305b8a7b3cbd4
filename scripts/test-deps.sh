#!/usr/bin/env bash
# Installs the real tools, servers and Python clients the tests drive, so
# that none of them is skipped: `.ci/run` calls it, and so does
# `scripts/setup.sh --dev`. Without them `cargo test --workspace` still
# passes, printing SKIPPED for each test whose tool is missing.
#
# Idempotent: only what is missing is installed.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# (command or path glob, Debian package): tshark/tcpdump (agreement and
# filter tests), iproute2 (network namespaces), dig (tap API test), dnsmasq
# and PostgreSQL (scenario lab, PostgreSQL live test), nghttpd (HTTP/2),
# Redis, MariaDB, openssl and RabbitMQ (protocol live tests).
need_apt=()
have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || compgen -G "$1" >/dev/null; }
for pair in tshark:tshark tcpdump:tcpdump ip:iproute2 dig:dnsutils dnsmasq:dnsmasq-base \
    '/usr/lib/postgresql/*/bin/initdb:postgresql' nghttpd:nghttp2-server \
    redis-server:redis-server redis-cli:redis-tools mariadb-install-db:mariadb-server \
    openssl:openssl rabbitmq-server:rabbitmq-server; do
  have "${pair%%:*}" || need_apt+=("${pair##*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing ${need_apt[*]} with apt-get."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# (module, pip package): moto's S3 server (snapshot upload), DuckDB (KFL
# against SQL), the official MCP SDK (MCP end to end), the lab's PyYAML and
# pg8000, and the protocol live tests' clients and servers.
need_pip=()
for pair in moto.server:'moto[server]' duckdb:duckdb mcp.client.streamable_http:mcp \
    yaml:pyyaml pg8000:pg8000 h2:h2 grpc:grpcio websockets.sync.server:websockets \
    pymysql:pymysql mysql.connector:mysql-connector-python pymongo:pymongo pika:pika; do
  python3 -c "import ${pair%%:*}" 2>/dev/null || need_pip+=("${pair#*:}")
done
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "Installing ${need_pip[*]} with pip."
  python3 -m pip install -q "${need_pip[@]}"
fi
