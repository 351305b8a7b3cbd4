#!/usr/bin/env bash
# One command for a newcomer on a fresh Debian machine: install what trawl
# needs, build trawl in release mode, install the binary, and start it on a
# sample capture so you see what it does.
#
#   bash scripts/setup.sh          # set up, then show trawl on a sample capture
#   bash scripts/setup.sh --tap    # set up, then start `trawl tap` (live capture)
#   bash scripts/setup.sh --dev    # also install what the tests drive (scripts/test-deps.sh)
#
# Idempotent: run it again after pulling.
set -euo pipefail
cd "$(dirname "$0")/.."

tap=false
dev=false
for arg in "$@"; do
  case "$arg" in
    --tap) tap=true ;;
    --dev) dev=true ;;
    *) echo "unknown option $arg (expected --tap and/or --dev)" >&2; exit 2 ;;
  esac
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
# To build and run trawl: a C toolchain (some dependencies compile C) and
# `time` (the benchmarks).
need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing ${need_apt[*]} with apt-get."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# With --dev: the tools, servers and Python clients the tests drive.
if $dev; then
  bash scripts/test-deps.sh
fi
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

if $tap; then
  data=${TRAWL_DATA:-$HOME/.local/share/trawl}
  echo
  echo "Starting trawl tap (all interfaces) into $data; Ctrl-C stops it."
  exec $SUDO "$bindir/trawl" tap --data "$data"
fi
