#!/usr/bin/env python3
"""The scenario lab's runner: builds a small cluster on this machine, runs
a scenario's load and fault timeline against it, writes the ground truth,
and takes it all down again.

    sudo python3 lab/runner.py run scenarios/checkout-incident.yaml --out DIR [--short] [--duration 90s] [--pcap FILE]
    python3 lab/runner.py check scenarios/*.yaml [--reference]
    python3 lab/runner.py preflight [--pcap]      # exit 3 when this machine cannot run the lab

`trawl-lab scenario …` execs this file with the same arguments. The
cluster is a Linux bridge with one network namespace per pod (a veth into
the bridge each, IPs in 10.244.1.0/24), a payment gateway outside the pod
range (203.0.113.10), dnsmasq as the cluster DNS, PostgreSQL as
catalogue-db, and the Python services of lab/checkout/. Everything the
run creates is removed on exit, on Ctrl-C and on SIGTERM. lab/README.md
documents the scenario format and the outputs.
"""

import argparse
import glob
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the checkout (root-owned, at that)
try:
    import scenario as scenario_mod  # noqa: E402
except ImportError as e:  # PyYAML: the only module the runner needs beyond the stdlib
    sys.exit(f"error: {e}; install it: python3 -m pip install pyyaml")

SERVICES_PY = os.path.join(HERE, "checkout", "services.py")

# The pods, in start order: service, Kubernetes namespace, IP, port. One
# replica each keeps the lab within a 2-core machine; the addresses are
# fixed so captures of different runs line up.
PODS = [
    ("kube-dns", "kube-system", "10.244.1.2", 53),
    ("catalogue-db", "shop", "10.244.1.15", 5432),
    ("payment-gateway", None, "203.0.113.10", 80),
    ("catalogue-service", "shop", "10.244.1.14", 8080),
    ("payment-service", "shop", "10.244.1.13", 8080),
    ("checkout-service", "shop", "10.244.1.12", 8080),
    ("cart-service", "shop", "10.244.1.11", 8080),
    ("frontend", "shop", "10.244.1.10", 8080),
    ("loadgen", "load", "10.244.1.100", None),
]
POD_CIDR = "10.244.0.0/16"
POD_PREFIX = 24
EXTERNAL_CIDR = "203.0.113.0/24"
GATEWAY_HOST = "api.paygate.example"
NODE = "lab-node-1"
# The search path and ndots of a Kubernetes pod: short names try the
# cluster domains first, and so do external names with few dots, which is
# where the NXDOMAIN noise in real cluster DNS comes from.
RESOLV_CONF = "nameserver {dns}\nsearch {ns}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"

# How long a service may take to start listening (PostgreSQL's initdb is
# the slowest step, a few seconds on a busy 2-core machine).
START_TIMEOUT_S = 60.0
# How long the load generator may take to finish requests in flight after
# the run's end (it gives up on its own after 20 s).
DRAIN_TIMEOUT_S = 25.0
# After the load stops, the capture runs until no service has written a
# ground-truth line for QUIET_S (calls between services still finishing),
# at most QUIET_MAX_S.
QUIET_S = 1.0
QUIET_MAX_S = 10.0
# Products loaded into catalogue-db; services.PRODUCTS must match.
PRODUCTS = 200
# K8s-style pod name suffix alphabet (no vowels, no confusable digits).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class LabError(Exception):
    """Something the person running the lab can fix; printed without a traceback."""


class Interrupted(Exception):
    pass


def log(msg):
    print(f"[lab] {msg}", file=sys.stderr, flush=True)


def sh(*cmd, check=True, quiet=False):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise LabError(f"`{shlex.join(cmd)}` failed ({r.returncode}): {r.stderr.strip()}")
    return r


def find_tool(name, extra_globs=()):
    path = shutil.which(name)
    if path:
        return path
    for pattern in extra_globs:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


def preflight(need_tcpdump):
    """Refuses clearly, before touching anything, when the lab cannot run."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: the lab creates network namespaces and a bridge; run it with sudo")
    tools = {
        "ip": find_tool("ip"),
        "dnsmasq": find_tool("dnsmasq", ["/usr/sbin/dnsmasq"]),
        "setpriv": find_tool("setpriv"),
        "initdb": find_tool("initdb", ["/usr/lib/postgresql/*/bin/initdb"]),
        "postgres": find_tool("postgres", ["/usr/lib/postgresql/*/bin/postgres"]),
    }
    if need_tcpdump:
        tools["tcpdump"] = find_tool("tcpdump", ["/usr/sbin/tcpdump"])
    hints = {"ip": "iproute2", "dnsmasq": "dnsmasq", "setpriv": "util-linux", "initdb": "postgresql",
             "postgres": "postgresql", "tcpdump": "tcpdump"}
    for name, path in tools.items():
        if path is None:
            problems.append(f"{name} not found: apt-get install {hints[name]}")
    try:
        import pg8000  # noqa: F401
    except ImportError:
        problems.append(f"Python module pg8000 missing for {sys.executable}: python3 -m pip install pg8000")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        problems.append("no 'postgres' user (PostgreSQL refuses to run as root): apt-get install postgresql")
    if problems:
        raise LabError("cannot run the lab:\n  " + "\n  ".join(problems))
    return tools


def pod_names(seed):
    """Deterministic Kubernetes-looking pod names: Deployment pods get
    `<service>-<replicaset hash>-<suffix>`, the database a StatefulSet's `-0`."""
    rng = random.Random(seed)
    names = {}
    for svc, _, _, _ in PODS:
        if svc == "catalogue-db":
            names[svc] = "catalogue-db-0"
        elif svc == "payment-gateway":
            names[svc] = "payment-gateway"
        else:
            rs = "".join(rng.choice(NAME_ALPHABET) for _ in range(9))
            sfx = "".join(rng.choice(NAME_ALPHABET) for _ in range(5))
            names[svc] = f"{svc}-{rs}-{sfx}"
    return names


def fqdn(svc, ns):
    if svc == "payment-gateway":
        return GATEWAY_HOST
    return f"{svc}.{ns}.svc.cluster.local"


class Lab:
    def __init__(self, sc, out, tools, args):
        self.sc = sc
        self.out = out
        self.tools = tools
        self.args = args
        self.run_id = os.urandom(2).hex()
        self.bridge = args.bridge or f"tl{self.run_id}br"
        self.cleanup = []  # callables, run in reverse order
        self.procs = {}  # name -> Popen
        self.names = pod_names(sc["seed"])
        self.state = None
        self.t0_ns = None
        self.end_ns = None
        self.faults_applied = []
        self.dns_state = {"nxdomain": list(sc["services"]["dns"]["nxdomain"]), "stopped": False}
        self.params = {svc: dict(p) for svc, p in sc["services"].items()}
        self.params["loadgen"] = dict(sc["load"])

    def netns(self, svc):
        return f"tl{self.run_id}-{svc}"

    # ------------------------------------------------------------ building

    def build(self):
        self.state = tempfile.mkdtemp(prefix=f"trawl-lab-{self.run_id}-")
        # PostgreSQL runs as `postgres` and must reach its data directory.
        os.chmod(self.state, 0o755)
        self.cleanup.append(lambda: shutil.rmtree(self.state, ignore_errors=True))
        for d in ("params", "ready", "pgsock"):
            os.makedirs(os.path.join(self.state, d))
        for d in ("truth", "logs"):
            os.makedirs(os.path.join(self.out, d), exist_ok=True)

        log(f"Bridge {self.bridge}, namespaces {self.netns('*')}, state in {self.state}.")
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.cleanup.append(lambda: sh("ip", "link", "del", self.bridge, check=False))
        # Bridged frames must not go through the host's iptables (Docker's
        # FORWARD policy drops them when br_netfilter is loaded); promiscuous
        # so that a capture on the bridge sees frames between ports.
        sh("ip", "link", "set", self.bridge, "type", "bridge", "nf_call_iptables", "0", "nf_call_ip6tables", "0",
           "nf_call_arptables", "0", check=False)
        sh("ip", "link", "set", self.bridge, "promisc", "on", "up")
        for i, (svc, ns, ip, _) in enumerate(PODS):
            self._pod(i, svc, ns, ip)
        self._topology()
        for svc in self.params:
            self._write_params(svc)

    def _pod(self, i, svc, kns, ip):
        ns = self.netns(svc)
        host_if = f"tl{self.run_id}v{i}"
        sh("ip", "netns", "add", ns)
        self.cleanup.append(lambda: self._del_netns(ns))
        run = lambda *c: sh("ip", "netns", "exec", ns, *c)  # noqa: E731
        # No IPv6: router solicitations and MLD reports are noise here.
        run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        run("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", host_if, "master", self.bridge, "up")
        run("ip", "link", "set", "lo", "up")
        run("ip", "addr", "add", f"{ip}/{POD_PREFIX}", "dev", "eth0")
        run("ip", "link", "set", "eth0", "up")
        # Pods and the gateway share the bridge: on-link routes stand in for
        # the node's routing, so the host needs no forwarding or NAT.
        other = POD_CIDR if svc == "payment-gateway" else EXTERNAL_CIDR
        run("ip", "route", "add", other, "dev", "eth0")
        etc = f"/etc/netns/{ns}"
        os.makedirs(etc, exist_ok=True)
        self.cleanup.append(lambda: shutil.rmtree(etc, ignore_errors=True))
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write(RESOLV_CONF.format(dns=PODS[0][2], ns=kns or "default"))

    def _del_netns(self, ns):
        # Processes left in the namespace (ours) go first, or the
        # namespace lingers as long as they do.
        r = sh("ip", "netns", "pids", ns, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", ns, check=False)

    def _topology(self):
        services = {}
        for svc, ns, ip, port in PODS:
            if port is None or svc == "kube-dns":
                continue
            host = GATEWAY_HOST if svc == "payment-gateway" else svc
            services[svc] = {"host": host, "port": port, "ip": ip, "pod": self.names[svc]}
        topo = {"seed": self.sc["seed"], "services": services,
                "clients": {ip: svc for svc, _, ip, _ in PODS}}
        with open(os.path.join(self.state, "topology.json"), "w") as f:
            json.dump(topo, f, indent=1)

    def _write_params(self, svc):
        path = os.path.join(self.state, "params", f"{svc}.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.params[svc], f)
        os.replace(tmp, path)  # services never read a half-written file

    # ----------------------------------------------------------- processes

    def spawn(self, name, ns_svc, cmd, user=None):
        logf = open(os.path.join(self.out, "logs", f"{name}.log"), "ab")
        full = ["ip", "netns", "exec", self.netns(ns_svc)]
        if user:
            full += [self.tools["setpriv"], f"--reuid={user}", f"--regid={user}", "--init-groups"]
        full += cmd
        # Own session: Ctrl-C reaches the runner only, which stops things in order.
        p = subprocess.Popen(full, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.procs[name] = p
        self.cleanup.append(lambda: self._stop(name))
        return p

    def _stop(self, name, sig=signal.SIGTERM, wait=5.0):
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(signal.SIGCONT)  # a stopped dnsmasq cannot act on SIGTERM
            p.send_signal(sig)
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        except ProcessLookupError:
            pass

    def wait_for(self, name, check, what):
        deadline = time.monotonic() + START_TIMEOUT_S
        p = self.procs[name]
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise LabError(f"{name} exited ({p.returncode}) while starting; see {self._log_tail(name)}")
            if check():
                return
            time.sleep(0.1)
        raise LabError(f"{name} did not {what} within {START_TIMEOUT_S:g}s; see {self._log_tail(name)}")

    def _log_tail(self, name):
        path = os.path.join(self.out, "logs", f"{name}.log")
        try:
            with open(path, errors="replace") as f:
                tail = f.read()[-1500:]
        except OSError:
            tail = ""
        return f"{path}:\n{tail}"

    # ---------------------------------------------------------------- DNS

    def _hosts_file(self):
        return os.path.join(self.state, "dns-hosts")

    def write_dns_records(self):
        lines = []
        for svc, ns, ip, _ in PODS:
            if svc in self.dns_state["nxdomain"] or svc == "loadgen":
                continue
            lines.append(f"{ip} {fqdn(svc, ns)}")
        tmp = self._hosts_file() + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self._hosts_file())

    def start_dns(self):
        self.write_dns_records()
        self.spawn("kube-dns", "kube-dns", [
            self.tools["dnsmasq"], "--keep-in-foreground", "--log-facility=-", "--user=root",
            "--no-resolv", "--no-hosts", f"--addn-hosts={self._hosts_file()}",
            f"--listen-address={PODS[0][2]}", "--bind-interfaces", "--port=53",
            # Authoritative for every name (there is no upstream): an unknown
            # name is NXDOMAIN, as CoreDNS and the Internet would answer it.
            "--local=/#/",
            "--pid-file=" + os.path.join(self.state, "dnsmasq.pid"),
        ])
        time.sleep(0.3)
        if self.procs["kube-dns"].poll() is not None:
            raise LabError(f"dnsmasq exited while starting; see {self._log_tail('kube-dns')}")

    def apply_dns(self):
        self.write_dns_records()
        p = self.procs["kube-dns"]
        # SIGHUP rereads --addn-hosts and clears the cache.
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGHUP)
        if self.dns_state["stopped"]:
            p.send_signal(signal.SIGSTOP)

    # ------------------------------------------------------------ database

    def _pg(self, database="postgres"):
        import pg8000.native

        return pg8000.native.Connection(user="postgres", database=database,
                                        unix_sock=os.path.join(self.state, "pgsock", ".s.PGSQL.5432"))

    def start_db(self):
        pgdata = os.path.join(self.state, "pgdata")
        os.makedirs(pgdata, mode=0o700)
        shutil.chown(pgdata, "postgres", "postgres")
        shutil.chown(os.path.join(self.state, "pgsock"), "postgres", "postgres")
        r = subprocess.run([self.tools["setpriv"], "--reuid=postgres", "--regid=postgres", "--init-groups",
                            self.tools["initdb"], "-D", pgdata, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                            "--no-locale", "--no-sync"], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f"initdb failed: {r.stderr.strip() or r.stdout.strip()}")
        db = self.params["catalogue-db"]
        with open(os.path.join(pgdata, "postgresql.conf"), "a") as f:
            f.write(
                f"listen_addresses = '{PODS[1][2]}'\nport = 5432\n"
                f"unix_socket_directories = '{os.path.join(self.state, 'pgsock')}'\n"
                f"max_connections = {db['max_connections']}\n"
                # A throwaway cluster: durability off, small memory.
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 16MB\n"
                # The server's side of the connection churn, in logs/catalogue-db.log.
                "log_connections = on\nlog_disconnections = on\n"
            )
        with open(os.path.join(pgdata, "pg_hba.conf"), "w") as f:
            f.write(f"local all all trust\nhost all all {POD_CIDR} trust\n")
        self.spawn("catalogue-db", "catalogue-db", [self.tools["postgres"], "-D", pgdata], user="postgres")
        sock = os.path.join(self.state, "pgsock", ".s.PGSQL.5432")

        def ready():
            if not os.path.exists(sock):
                return False
            try:
                self._pg().close()
                return True
            except Exception:
                return False

        self.wait_for("catalogue-db", ready, "accept connections")
        c = self._pg()
        c.run("CREATE ROLE catalogue LOGIN")
        c.run("CREATE DATABASE shop OWNER catalogue")
        c.close()
        c = self._pg("shop")
        c.run("CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL)")
        c.run(f"INSERT INTO products SELECT g, 'Product ' || g, 499 + (g * 37) % 9000 "
              f"FROM generate_series(1, {PRODUCTS}) g")
        # The catalogue's query, as a function so that the scenario can make
        # the database slow (lab.query_delay_ms) without touching the service.
        c.run("""
            CREATE FUNCTION catalogue_products(p_id int)
            RETURNS TABLE(id int, name text, price_cents int) LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_sleep((coalesce(nullif(current_setting('lab.query_delay_ms', true), ''), '0')::float8
                + random() * coalesce(nullif(current_setting('lab.query_jitter_ms', true), ''), '0')::float8)
                / 1000.0);
              RETURN QUERY SELECT p.id, p.name, p.price_cents FROM products p
                WHERE p_id IS NULL OR p.id = p_id ORDER BY p.id;
            END $$""")
        c.run("GRANT SELECT ON products TO catalogue")
        c.close()
        self.apply_db()

    def apply_db(self):
        """Database-level settings: every new connection (catalogue-service
        opens one per query) sees them at once."""
        db = self.params["catalogue-db"]
        c = self._pg()
        c.run(f"ALTER DATABASE shop SET lab.query_delay_ms = '{db['query_delay'] * 1000:.3f}'")
        c.run(f"ALTER DATABASE shop SET lab.query_jitter_ms = '{db['query_jitter'] * 1000:.3f}'")
        c.close()

    # ------------------------------------------------------------ services

    def start_service(self, svc):
        ns, ip, port = next((n, i, p) for s, n, i, p in PODS if s == svc)
        cmd = [sys.executable, "-u", "-B", SERVICES_PY, svc, "--pod", self.names[svc], "--state", self.state,
               "--truth", os.path.join(self.out, "truth", f"{svc}.jsonl")]
        if port is not None:
            cmd += ["--listen", f"{ip}:{port}"]
        self.spawn(svc, svc, cmd)
        ready = os.path.join(self.state, "ready", svc)
        self.wait_for(svc, lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, "start")

    def start_capture(self):
        a = self.args
        if a.pcap:
            self.spawn_host("capture", [self.tools["tcpdump"], "-i", self.bridge, "-s", "0", "-n", "-U",
                                        "--time-stamp-precision=nano", "-w", a.pcap])
        elif a.capture_cmd:
            self.spawn_host("capture", shlex.split(a.capture_cmd.replace("{bridge}", self.bridge)))
        else:
            return
        # Let the capture attach before the first packet worth having.
        time.sleep(1.0)
        if self.procs["capture"].poll() is not None:
            raise LabError(f"the capture exited at once; see {self._log_tail('capture')}")

    def spawn_host(self, name, cmd):
        logf = open(os.path.join(self.out, "logs", f"{name}.log"), "ab")
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        self.procs[name] = p
        self.cleanup.append(lambda: self._stop(name, signal.SIGINT, 10.0))

    # ------------------------------------------------------------ timeline

    def apply_fault(self, fault):
        target, change = fault["target"], fault["change"]
        self.params[target].update(change)
        if target == "dns":
            self.dns_state.update(change)
            self.apply_dns()
        elif target == "catalogue-db":
            self.apply_db()
        else:
            self._write_params(target)
        now = time.time_ns()
        shown = {k: (scenario_mod.format_duration(v) if isinstance(v, float) and
                     scenario_mod.SERVICE_PARAMS[target][k][0] == "duration" else v) for k, v in change.items()}
        rec = {"name": fault["name"], "target": target, "change": shown, "at_s": fault["at"],
               "time": rfc3339(now), "ts_ns": now, "offset_s": round((now - self.t0_ns) / 1e9, 3),
               "note": fault["note"]}
        self.faults_applied.append(rec)
        log(f"T+{rec['offset_s']:.1f}s {fault['name']}: {target} {shown}")

    def run_timeline(self):
        self.start_service("loadgen")
        with open(os.path.join(self.state, "ready", "loadgen")) as f:
            self.t0_ns = int(f.read())
        sc = self.sc
        log(f"Load started: {sc['load']['rate']:g} req/s for {scenario_mod.format_duration(sc['duration'])}.")
        pending = list(sc["faults"])
        end = self.t0_ns / 1e9 + sc["duration"]
        next_status = time.time() + 10
        while True:
            now = time.time()
            if now >= end:
                break
            if pending and now >= self.t0_ns / 1e9 + pending[0]["at"]:
                self.apply_fault(pending.pop(0))
                continue
            if self.procs["loadgen"].poll() is not None:
                raise LabError(f"the load generator died; see {self._log_tail('loadgen')}")
            if now >= next_status:
                log(f"T+{now - self.t0_ns / 1e9:.0f}s")
                next_status += 10
            wake = min([end, next_status] + ([self.t0_ns / 1e9 + pending[0]["at"]] if pending else []))
            time.sleep(max(0.0, min(0.5, wake - time.time())))
        log("Stopping the load; letting requests in flight finish.")
        self._stop("loadgen", signal.SIGTERM, DRAIN_TIMEOUT_S)
        self._quiesce()
        self.end_ns = time.time_ns()
        if "capture" in self.procs:
            time.sleep(0.2)  # the last ACKs and FINs
            self._stop("capture", signal.SIGINT, 10.0)

    def _quiesce(self):
        def size():
            return sum(os.path.getsize(p) for p in glob.glob(os.path.join(self.out, "truth", "*.jsonl")))

        deadline = time.monotonic() + QUIET_MAX_S
        last, since = size(), time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - since < QUIET_S:
            time.sleep(0.2)
            now = size()
            if now != last:
                last, since = now, time.monotonic()

    # -------------------------------------------------------------- outputs

    def write_outputs(self):
        write_workloads(os.path.join(self.out, "workloads.yaml"), self.names)
        records = []
        for path in sorted(glob.glob(os.path.join(self.out, "truth", "*.jsonl"))):
            with open(path) as f:
                for line in f:
                    line = line.strip()
                    if line:
                        try:
                            records.append(json.loads(line))
                        except ValueError:
                            pass  # a line cut by a kill at teardown
        records.sort(key=lambda r: r["ts_ns"])
        with open(os.path.join(self.out, "ground-truth.jsonl"), "w") as f:
            for r in records:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
        with open(os.path.join(self.out, "faults.json"), "w") as f:
            json.dump(self.faults_applied, f, indent=1)
        summary = summarize(records, self.faults_applied)
        run = {
            "scenario": self.sc["name"], "file": self.sc["file"], "seed": self.sc["seed"],
            "start": rfc3339(self.t0_ns), "start_ns": self.t0_ns,
            "end": rfc3339(self.end_ns), "end_ns": self.end_ns,
            "duration_s": self.sc["duration"], "load": self.sc["load"], "bridge": self.bridge,
            "pcap": self.args.pcap,
            "pods": [{"service": s, "namespace": n, "ip": i, "port": p, "pod": self.names[s]} for s, n, i, p in PODS],
            "gateway_host": GATEWAY_HOST,
            "faults": self.faults_applied, "summary": summary,
        }
        with open(os.path.join(self.out, "run.json"), "w") as f:
            json.dump(run, f, indent=1)
        return summary

    def teardown(self):
        while self.cleanup:
            fn = self.cleanup.pop()
            try:
                fn()
            except Exception as e:  # keep tearing down; say what stayed
                log(f"Cleanup step failed: {e}")


def rfc3339(ns):
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def write_workloads(path, names):
    """The workloads file trawl's identity crate reads (crates/identity/src/workloads.rs)."""
    lines = [
        "# Written by lab/runner.py: the lab's pods and the external payment gateway.",
        "# Services are headless (DNS answers pod IPs), so only pods and the external entry own IPs.",
        "workloads:",
    ]
    for svc, ns, ip, port in PODS:
        if svc == "payment-gateway":
            lines.append(f"  - {{kind: external, name: {svc}, labels: {{app: {svc}, host: {GATEWAY_HOST}}}, ips: [{ip}]}}")
            continue
        labels = {"app": svc}
        if svc == "kube-dns":
            labels = {"k8s-app": "kube-dns"}
        label_text = ", ".join(f"{k}: {v}" for k, v in labels.items())
        lines.append(f"  - {{kind: pod, name: {names[svc]}, namespace: {ns}, service: {svc}, node: {NODE}, "
                     f"labels: {{{label_text}}}, ips: [{ip}]}}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def summarize(records, faults):
    """Counts that say at a glance whether the scenario did what it says."""
    first_fault = faults[0]["ts_ns"] if faults else None

    def served(svc, path):
        return [r for r in records if r["side"] == "server" and r["recorded_by"] == svc and r["path"] == path]

    user = [r for r in records if r["recorded_by"] == "loadgen"]
    checkout = served("frontend", "/api/v1/checkout")
    after = [r for r in checkout if first_fault is None or r["ts_ns"] >= first_fault]
    s = {
        "user_requests": len(user),
        "user_2xx": sum(1 for r in user if r["status"] and 200 <= r["status"] < 300),
        "checkout_requests": len(checkout),
        "checkout_503": sum(1 for r in checkout if r["response_status"] == 503),
        "checkout_503_after_first_fault": sum(1 for r in after if r["response_status"] == 503),
        "checkout_after_first_fault": len(after),
        "cart_retries": sum(1 for r in records if r["recorded_by"] == "cart-service" and r["side"] == "client"
                            and r["attempt"] > 1),
        "payment_gateway_timeouts": sum(1 for r in records if r["recorded_by"] == "payment-service"
                                        and r["side"] == "client" and r["timeout"]),
        "payment_pool_exhausted": sum(1 for r in records if r["recorded_by"] == "payment-service"
                                      and r["side"] == "client" and r["pool_exhausted"]),
        "payment_resets": sum(1 for r in records if r["recorded_by"] == "payment-service"
                              and r["side"] == "client" and r["reset"]),
        "db_connections": sum(1 for r in records if r["protocol"] == "postgres" and r["new_connection"]),
        "db_errors": sum(1 for r in records if r["protocol"] == "postgres" and r["error"]),
        "dns_failures": sum(1 for r in records if (r.get("error") or "").startswith("dns_failure")),
    }
    return s


def cmd_run(args):
    try:
        sc = scenario_mod.load(args.scenario, short=args.short, duration=args.duration)
    except scenario_mod.ScenarioError as e:
        raise LabError(str(e)) from None
    if sc["dropped_faults"]:
        log(f"Warning: --duration {args.duration} leaves out {', '.join(sc['dropped_faults'])} (after the end).")
    tools = preflight(need_tcpdump=bool(args.pcap))
    out = os.path.abspath(args.out)
    if os.path.exists(os.path.join(out, "ground-truth.jsonl")) and not args.force:
        raise LabError(f"{out} already holds a run; choose another --out or pass --force")
    if args.force:
        for name in ("truth", "logs"):
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    if args.pcap:
        args.pcap = os.path.abspath(args.pcap)
    lab = Lab(sc, out, tools, args)

    def on_signal(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    summary = None
    try:
        lab.build()
        lab.start_dns()
        lab.start_db()
        lab.start_capture()
        for svc in ("payment-gateway", "catalogue-service", "payment-service", "checkout-service",
                    "cart-service", "frontend"):
            lab.start_service(svc)
        lab.run_timeline()
        summary = lab.write_outputs()
    except Interrupted as e:
        log(f"Interrupted ({e}); tearing the lab down.")
        if lab.t0_ns is not None:
            lab.end_ns = time.time_ns()
            lab.write_outputs()
        return 130
    finally:
        # Signals during teardown would leave half the lab behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        lab.teardown()
    log(f"Done. Outputs in {out}: workloads.yaml, ground-truth.jsonl, faults.json, run.json"
        + (f", {args.pcap}" if args.pcap else "") + ".")
    print(json.dumps(summary, indent=1))
    return 0


def cmd_check(args):
    status = 0
    if args.reference:
        print(scenario_mod.format_reference())
    for path in args.scenarios:
        try:
            for short in (False, True):
                sc = scenario_mod.load(path, short=short)
                kind = "short" if short else "full"
                faults = ", ".join(f"{f['name']} at {scenario_mod.format_duration(f['at'])} ({f['target']})"
                                   for f in sc["faults"]) or "no faults"
                print(f"{path} ({kind}): {sc['name']}, {scenario_mod.format_duration(sc['duration'])}, "
                      f"{sc['load']['rate']:g} req/s; {faults}")
        except scenario_mod.ScenarioError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status


def main(argv=None):
    ap = argparse.ArgumentParser(prog="trawl-lab scenario", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build the lab, run a scenario, write the ground truth, tear down")
    r.add_argument("scenario", help="scenario file (YAML), e.g. scenarios/checkout-incident.yaml")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument("--short", action="store_true", help="run the file's short version (tests, demos)")
    r.add_argument("--duration", help="override the run's length, e.g. 90s, 5m")
    r.add_argument("--pcap", help="capture the bridge with tcpdump into this pcap file")
    r.add_argument("--capture-cmd", help="start this capture command once the bridge exists ({bridge} is "
                                         "replaced by its name), stop it with SIGINT at the end; e.g. "
                                         "'trawl tap --data D --interface {bridge}'")
    r.add_argument("--bridge", help="bridge name (default tl<run id>br)")
    r.add_argument("--force", action="store_true", help="overwrite a previous run in --out")
    p = sub.add_parser("preflight", help="say whether this machine can run the lab (exit 3 and why if not)")
    p.add_argument("--pcap", action="store_true", help="also need tcpdump")
    c = sub.add_parser("check", help="check scenario files and print their timelines (no root needed)")
    c.add_argument("scenarios", nargs="+")
    c.add_argument("--reference", action="store_true", help="print every parameter, its default and meaning")
    args = ap.parse_args(argv)
    if args.cmd == "run" and args.pcap and args.capture_cmd:
        ap.error("--pcap and --capture-cmd are exclusive")
    if args.cmd == "preflight":
        try:
            preflight(need_tcpdump=args.pcap)
        except LabError as e:
            print(e)
            return 3
        print("ready: root, ip, dnsmasq, setpriv, PostgreSQL and pg8000 found")
        return 0
    try:
        return cmd_run(args) if args.cmd == "run" else cmd_check(args)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
