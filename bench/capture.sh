#!/usr/bin/env bash
# Capture benchmark: trawl's AF_PACKET TPACKET_V3 capture against tcpdump on
# a veth pair between two network namespaces made for the run (deleted on
# exit). A sender in namespace B sends small UDP datagrams at increasing
# rates: by default crates/capture/examples/frame_blast.rs, ready-made frames
# through an AF_PACKET socket with the qdisc bypassed and a destination MAC
# no interface has, so the receiving stack drops them right after the packet
# taps (SENDER=udp: examples/udp_blast.rs through the UDP/IP stack, which
# tops out near 250 000 packets/s on a 2-core VM). For each rate, each tool captures
# on the veth end in namespace A for DURATION seconds with the same snap
# length, ring size and filter, and writes the packets to /dev/null
# (trawl: examples/capture_count.rs --write /dev/null; tcpdump: -w /dev/null).
# A run is loss-free when the kernel reports no drops and the tool captured
# every datagram that was sent.
#
# Prints a table per rate, then each tool's highest loss-free rate, the
# ratio, and trawl's CPU and peak RSS at its best rate.
#
# Usage: sudo bench/capture.sh [RATE ...]     (packets/s; default below)
# Env:   DURATION=10 SNAPLEN=262144 RING_MB=32 SIZE=64
#        SENDER=frame|udp  the traffic source (see above)
#        SENDERS=1  sender threads (one flow each); raise it on hosts with
#                   more cores when one sender cannot reach the rates
#        PIN_CPU=N  runs sender and capture on CPU N only (taskset), so that
#                   they compete and the capture's cost per packet decides
#                   the loss-free rate even where the sender is the limit.
# Needs root, iproute2, tcpdump, GNU time (/usr/bin/time).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10}
SNAPLEN=${SNAPLEN:-262144}
RING_MB=${RING_MB:-32}
SIZE=${SIZE:-64}
RATES=("$@")
if [ ${#RATES[@]} -eq 0 ]; then
	RATES=(100000 200000 400000 600000 800000 1000000 1300000 1600000)
fi

for tool in ip tcpdump /usr/bin/time; do
	command -v "$tool" >/dev/null || { echo "capture.sh: $tool is missing (apt-get install -y iproute2 tcpdump time)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "capture.sh: needs root (network namespaces, AF_PACKET)" >&2; exit 1; }

cargo build --quiet --release -p trawl-capture --examples --manifest-path "$ROOT/Cargo.toml"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples"

NS_A="tbenchA$$"
NS_B="tbenchB$$"
VETH_A="tbva$$"
VETH_B="tbvb$$"
ADDR_A=10.200.240.1
ADDR_B=10.200.240.2
PORT=9000
FILTER="udp dst port $PORT"
TMP=$(mktemp -d)

cleanup() {
	ip netns del "$NS_A" 2>/dev/null || true
	ip netns del "$NS_B" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$NS_A"
ip netns add "$NS_B"
for ns in "$NS_A" "$NS_B"; do
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B"
ip -n "$NS_A" addr add "$ADDR_A/24" dev "$VETH_A"
ip -n "$NS_B" addr add "$ADDR_B/24" dev "$VETH_B"
ip -n "$NS_A" link set "$VETH_A" up
ip -n "$NS_B" link set "$VETH_B" up
ip -n "$NS_A" link set lo up
# Resolve the neighbour once so that the first datagrams are not queued on ARP.
ip netns exec "$NS_B" ping -c 1 -W 1 "$ADDR_A" >/dev/null 2>&1 || true

# Captures stop one second after the sender is done; this only bounds a
# sender that hangs.
CAPTURE_LIMIT=$((DURATION * 3 + 10))
PIN=()
if [ -n "${PIN_CPU:-}" ]; then
	PIN=(taskset -c "$PIN_CPU")
fi

# send RATE -> prints "sent=N ... pps=P"
send() {
	sleep 1
	if [ "${SENDER:-frame}" = udp ]; then
		ip netns exec "$NS_B" "${PIN[@]}" "$BIN/udp_blast" --to "$ADDR_A:$PORT" --pps "$1" --seconds "$DURATION" --size "$SIZE" --threads "${SENDERS:-1}"
	else
		ip netns exec "$NS_B" "${PIN[@]}" "$BIN/frame_blast" --interface "$VETH_B" --src "$ADDR_B" --dst "$ADDR_A" --port "$PORT" \
			--pps "$1" --seconds "$DURATION" --size "$SIZE" --threads "${SENDERS:-1}"
	fi
}

# Packets the veth pair itself dropped (receive backlog full): a loss that
# is neither tool's. Sum of A's rx_dropped and B's tx_dropped.
veth_drops() {
	local a b
	a=$(ip -n "$NS_A" -s -j link show dev "$VETH_A" | sed -n 's/.*"rx":{[^}]*"dropped":\([0-9]*\).*/\1/p')
	b=$(ip -n "$NS_B" -s -j link show dev "$VETH_B" | sed -n 's/.*"tx":{[^}]*"dropped":\([0-9]*\).*/\1/p')
	echo $(( ${a:-0} + ${b:-0} ))
}

# run_trawl RATE -> "sent captured drops cpu rss_kb achieved_pps"
run_trawl() {
	rm -f "$TMP/stop"
	ip netns exec "$NS_A" "${PIN[@]}" /usr/bin/time -f "cpu_s=%U %S %e rss_kb=%M" -o "$TMP/time" \
		"$BIN/capture_count" --interface "$VETH_A" --seconds "$CAPTURE_LIMIT" --stop-file "$TMP/stop" \
		--filter "$FILTER" --snaplen "$SNAPLEN" --block-size 1048576 --block-count "$RING_MB" \
		--write /dev/null >"$TMP/cap" &
	local cap=$!
	local s
	s=$(send "$1")
	sleep 1
	touch "$TMP/stop"
	wait "$cap"
	local sent captured drops cpu rss pps
	sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$s")
	pps=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' <<<"$s")
	captured=$(sed -n 's/.*captured=\([0-9]*\).*/\1/p' "$TMP/cap")
	drops=$(sed -n 's/.*drops=\([0-9]*\).*/\1/p' "$TMP/cap")
	cpu=$(awk '/cpu_s=/ { sub("cpu_s=", "", $1); if ($3 > 0) printf "%.1f", ($1 + $2) / $3 * 100 }' "$TMP/time")
	rss=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' "$TMP/time")
	echo "$sent $captured $drops ${cpu:-?} ${rss:-?} $pps"
}

# run_tcpdump RATE -> "sent captured drops cpu rss_kb achieved_pps"
run_tcpdump() {
	ip netns exec "$NS_A" "${PIN[@]}" /usr/bin/time -f "cpu_s=%U %S %e rss_kb=%M" -o "$TMP/time" \
		timeout -s INT "$CAPTURE_LIMIT" tcpdump -i "$VETH_A" -nn -q -w /dev/null -s "$SNAPLEN" \
		-B $((RING_MB * 1024)) "$FILTER" 2>"$TMP/cap" &
	local cap=$!
	local s
	s=$(send "$1")
	sleep 1
	# Stop tcpdump itself (time -> timeout -> tcpdump, found by parent pid).
	local t
	t=$(pgrep -P "$(pgrep -P "$cap")" || true)
	[ -n "$t" ] && kill -INT "$t"
	wait "$cap" || true
	local sent captured drops cpu rss pps
	sent=$(sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$s")
	pps=$(sed -n 's/.*pps=\([0-9]*\).*/\1/p' <<<"$s")
	captured=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$TMP/cap")
	drops=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$TMP/cap")
	# `timeout` measures itself plus tcpdump; the CPU is tcpdump's.
	cpu=$(awk '/cpu_s=/ { sub("cpu_s=", "", $1); if ($3 > 0) printf "%.1f", ($1 + $2) / $3 * 100 }' "$TMP/time")
	rss=$(sed -n 's/.*rss_kb=\([0-9]*\).*/\1/p' "$TMP/time")
	echo "$sent $captured $drops ${cpu:-?} ${rss:-?} $pps"
}

echo "cpu% is user+sys of the capture process over its whole run, in % of one core"
echo "capture benchmark: $(nproc) CPUs${PIN_CPU:+ (sender and capture pinned to CPU $PIN_CPU)}, $(uname -r), ${DURATION}s per run, ${SIZE}-byte UDP payloads, snaplen $SNAPLEN, ring ${RING_MB} MiB, filter '$FILTER', sender ${SENDER:-frame}"
echo "veth_drop: packets the veth pair dropped before any capture saw them (not counted against the tool)"
printf '%-8s %9s %9s %10s %10s %8s %9s %6s %9s %s\n' tool rate sent_pps sent captured drops veth_drop cpu% rss_MiB loss_free
# Per tool: the highest rate the sender really reached in a loss-free run,
# and whether any run lost packets (only then was the tool's limit found).
declare -A best=([trawl]=0 [tcpdump]=0) lossy=([trawl]=no [tcpdump]=no) best_cpu=() best_rss=()
for rate in "${RATES[@]}"; do
	for tool in trawl tcpdump; do
		vd0=$(veth_drops)
		read -r sent captured drops cpu rss pps < <("run_$tool" "$rate")
		vd=$(( $(veth_drops) - vd0 ))
		ok=no
		if [ "${drops:-1}" = 0 ] && [ "${captured:-0}" -ge $(( ${sent:-1} - vd )) ]; then ok=yes; fi
		note=""
		if [ "${pps:-0}" -lt $((rate * 95 / 100)) ]; then note=" (sender reached only $pps)"; fi
		rss_mib=$([ "$rss" = "?" ] && echo "?" || echo $((rss / 1024)))
		printf '%-8s %9s %9s %10s %10s %8s %9s %6s %9s %s\n' "$tool" "$rate" "$pps" "$sent" "$captured" "$drops" "$vd" "$cpu" "$rss_mib" "$ok$note"
		if [ "$ok" = yes ]; then
			if [ "${pps:-0}" -gt "${best[$tool]}" ]; then
				best[$tool]=$pps
				best_cpu[$tool]=$cpu
				best_rss[$tool]=$rss_mib
			fi
		else
			lossy[$tool]=yes
		fi
	done
done

echo
for tool in trawl tcpdump; do
	if [ "${lossy[$tool]}" = yes ]; then
		echo "$tool: highest loss-free rate ${best[$tool]} pps"
	else
		echo "$tool: no loss in any run; loss-free at least up to ${best[$tool]} pps (its limit was not reached)"
	fi
done
if [ "${lossy[tcpdump]}" = yes ] && [ "${best[tcpdump]}" -gt 0 ]; then
	echo "ratio trawl/tcpdump: $(awk -v a="${best[trawl]}" -v b="${best[tcpdump]}" 'BEGIN { printf "%.2f", a / b }')$([ "${lossy[trawl]}" = no ] && echo ' or more (trawl never lost a packet)')"
else
	echo "ratio trawl/tcpdump: undetermined, tcpdump never lost a packet; raise the rates (SENDERS, a bigger host) or make them compete (PIN_CPU)"
fi
echo "trawl at ${best[trawl]} pps: CPU ${best_cpu[trawl]:-?}% of one core, peak RSS ${best_rss[trawl]:-?} MiB (ring ${RING_MB} MiB)"
echo "tcpdump at ${best[tcpdump]} pps: CPU ${best_cpu[tcpdump]:-?}% of one core, peak RSS ${best_rss[tcpdump]:-?} MiB"
