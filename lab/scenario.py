"""The scenario file format: parse, check strictly, and resolve defaults.

A scenario file (YAML) says how long the lab runs, how hard users load the
frontend, how each service behaves, and what goes wrong when (the fault
timeline). `runner.py` calls `load()` once before building anything, so a
typo fails in a second with the file, the key and a fix, not after the
cluster is up. lab/README.md documents the format; the registries below
(`SERVICE_PARAMS`, `LOAD_PARAMS`, `TOP_KEYS`) are its single source of
truth, and `runner.py check` prints them.
"""

import re

import yaml

# Every service parameter, its kind, default and meaning. A plain table so
# the documentation, the checks and the services read the same names.
# Kinds: "duration" (written 200ms, 5s, 1m30s; stored as float seconds),
# "int", "float", "names" (a list of service names).
SERVICE_PARAMS = {
    "frontend": {
        "timeout": ("duration", 30.0, "client timeout on calls to cart-service and catalogue-service"),
    },
    "cart-service": {
        "attempts": ("int", 3, "tries per call to checkout-service or catalogue-service (first + retries)"),
        "backoff": ("duration", 0.02, "pause between tries; 3 fast failures land within 100 ms"),
        "timeout": ("duration", 20.0, "client timeout per try"),
    },
    "checkout-service": {
        "timeout": ("duration", 12.0, "client timeout on calls to payment-service"),
    },
    "payment-service": {
        "gateway_timeout": ("duration", 5.0, "client timeout on the synchronous gateway call; past it: RST, 503"),
        "pool_size": ("int", 10, "connections to the gateway at most (the bounded pool)"),
        "pool_wait": ("duration", 0.01, "longest wait for a free pool connection before answering 503"),
    },
    "payment-gateway": {
        "latency": ("duration", 0.2, "typical time to answer a charge"),
        "jitter": ("duration", 0.04, "standard deviation around latency (normal distribution)"),
        "tail_share": ("float", 0.0, "share of charges that take tail_latency instead (0 to 1)"),
        "tail_latency": ("duration", 6.5, "latency of the tail; past payment-service's timeout by default"),
        "error_share": ("float", 0.0, "share of charges answered 500 (0 to 1)"),
    },
    "catalogue-service": {
        "db_timeout": ("duration", 2.0, "connect and query timeout towards catalogue-db"),
    },
    "catalogue-db": {
        "query_delay": ("duration", 0.002, "time each catalogue query takes inside PostgreSQL (pg_sleep)"),
        "query_jitter": ("duration", 0.003, "uniform extra time, 0 to this, per query"),
        "max_connections": ("int", 40, "PostgreSQL max_connections (fixed at start; not a fault target)"),
    },
    "dns": {
        "nxdomain": ("names", [], "services whose names dnsmasq answers NXDOMAIN for"),
        "stopped": ("bool", False, "dnsmasq stops answering at all (SIGSTOP); clients time out"),
    },
}

LOAD_PARAMS = {
    "rate": ("float", 20.0, "user requests per second to the frontend, steady"),
    "users": ("int", 200, "distinct users (each has a cart)"),
    "workers": ("int", 64, "concurrent user requests at most"),
    "timeout": ("duration", 30.0, "user-side timeout per request"),
    "mix": ("mix", {"browse": 0.62, "cart": 0.30, "checkout": 0.08}, "shares of browse, cart and checkout requests"),
}

TOP_KEYS = {
    "name": "short name, used in output files",
    "description": "what the scenario shows (free text)",
    "duration": "how long users load the frontend (full version)",
    "seed": "seed of every random choice (same seed, same request sequence)",
    "load": "the load generator (see LOAD_PARAMS)",
    "services": "per-service parameters at start (see SERVICE_PARAMS)",
    "faults": "the fault timeline: entries with name, at, target, change, note",
    "short": "the short version for tests and demos: duration, at (fault name -> time or null)",
}

FAULT_KEYS = {"name", "at", "target", "change", "note"}
SHORT_KEYS = {"duration", "at"}
MIX_KEYS = ("browse", "cart", "checkout")

# Fixed-at-start parameters: changing them mid-run would need a restart,
# which is a different fault than the one the timeline promises.
NOT_FAULTABLE = {("catalogue-db", "max_connections"), ("payment-service", "pool_size")}

# Longest run the lab accepts: a typo like `duration: 90m` would tie up a
# machine for an hour and fill the disk with ground truth.
MAX_DURATION_S = 3600.0

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScenarioError(Exception):
    """A problem in a scenario file, naming the file and the key."""


def parse_duration(text, where):
    """`90s`, `1m30s`, `200ms`, `4.2s` -> seconds. Bare numbers are refused:
    `timeout: 5` could mean seconds or milliseconds."""
    if isinstance(text, bool) or not isinstance(text, str) or not _DURATION.match(text.strip()):
        raise ScenarioError(
            f"{where}: {text!r} is not a duration; write it with a unit, like 200ms, 5s, 1m30s"
        )
    return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text.strip()))


def format_duration(seconds):
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def _did_you_mean(key, known):
    import difflib

    close = difflib.get_close_matches(str(key), list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"


def _value(kind, value, where):
    if kind == "duration":
        return parse_duration(value, where)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ScenarioError(f"{where}: {value!r} is not a whole number >= 0")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ScenarioError(f"{where}: {value!r} is not a number >= 0")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ScenarioError(f"{where}: {value!r} is not true or false")
        return value
    if kind == "names":
        if not isinstance(value, list) or not all(v in SERVICE_NAMES for v in value):
            raise ScenarioError(
                f"{where}: {value!r} is not a list of service names ({', '.join(SERVICE_NAMES)})"
            )
        return list(value)
    if kind == "mix":
        if not isinstance(value, dict):
            raise ScenarioError(f"{where}: expected a map like {{browse: 0.6, cart: 0.3, checkout: 0.1}}")
        out = {}
        for k, v in value.items():
            if k not in MIX_KEYS:
                raise ScenarioError(f"{where}.{k}: unknown request kind{_did_you_mean(k, MIX_KEYS)}")
            out[k] = _value("float", v, f"{where}.{k}")
        total = sum(out.values())
        if total <= 0:
            raise ScenarioError(f"{where}: the shares add up to 0; give at least one a positive share")
        return {k: out.get(k, 0.0) / total for k in MIX_KEYS}
    raise AssertionError(kind)


# Services a fault or a DNS rule may name: the registry above, which is
# also the list of pods the runner builds (plus the load generator).
SERVICE_NAMES = [
    "frontend",
    "cart-service",
    "checkout-service",
    "payment-service",
    "payment-gateway",
    "catalogue-service",
    "catalogue-db",
]


def _params(table, given, where, faultable_for=None):
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise ScenarioError(f"{where}: expected a map of parameters")
    out = {}
    for key, value in given.items():
        if key not in table:
            raise ScenarioError(f"{where}.{key}: unknown parameter{_did_you_mean(key, table)}")
        if faultable_for and (faultable_for, key) in NOT_FAULTABLE:
            raise ScenarioError(f"{where}.{key}: fixed at start; set it under services.{faultable_for}")
        out[key] = _value(table[key][0], value, f"{where}.{key}")
    return out


def defaults(table):
    return {k: (list(v[1]) if isinstance(v[1], list) else dict(v[1]) if isinstance(v[1], dict) else v[1])
            for k, v in table.items()}


def load(path, short=False, duration=None):
    """Reads and checks a scenario file; returns a dict with resolved
    values (seconds as floats, defaults filled in), the fault timeline
    sorted by time, and for `short` the short version's times."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror}") from e
    except yaml.YAMLError as e:
        raise ScenarioError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a map at the top (name, duration, load, services, faults)")
    for key in raw:
        if key not in TOP_KEYS:
            raise ScenarioError(f"{path}: {key}: unknown key{_did_you_mean(key, TOP_KEYS)}")
    for key in ("name", "duration"):
        if key not in raw:
            raise ScenarioError(f"{path}: missing {key!r}")
    name = raw["name"]
    if not isinstance(name, str) or not re.match(r"^[a-z0-9][a-z0-9-]*$", name):
        raise ScenarioError(f"{path}: name: {name!r}; use lowercase letters, digits and '-'")
    seed = raw.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"{path}: seed: {seed!r} is not a whole number")

    load_params = defaults(LOAD_PARAMS)
    load_params.update(_params(LOAD_PARAMS, raw.get("load"), f"{path}: load"))
    if load_params["rate"] <= 0 or load_params["users"] < 1 or load_params["workers"] < 1:
        raise ScenarioError(f"{path}: load: rate, users and workers must be above 0")

    services = {svc: defaults(table) for svc, table in SERVICE_PARAMS.items()}
    given = raw.get("services") or {}
    if not isinstance(given, dict):
        raise ScenarioError(f"{path}: services: expected a map of service name to parameters")
    for svc, params in given.items():
        if svc not in SERVICE_PARAMS:
            raise ScenarioError(f"{path}: services.{svc}: unknown service{_did_you_mean(svc, SERVICE_PARAMS)}")
        services[svc].update(_params(SERVICE_PARAMS[svc], params, f"{path}: services.{svc}"))

    faults = []
    for i, entry in enumerate(raw.get("faults") or []):
        where = f"{path}: faults[{i}]"
        if not isinstance(entry, dict):
            raise ScenarioError(f"{where}: expected a map with at, target, change")
        for key in entry:
            if key not in FAULT_KEYS:
                raise ScenarioError(f"{where}.{key}: unknown key{_did_you_mean(key, FAULT_KEYS)}")
        for key in ("at", "target", "change"):
            if key not in entry:
                raise ScenarioError(f"{where}: missing {key!r}")
        target = entry["target"]
        if target not in SERVICE_PARAMS:
            raise ScenarioError(f"{where}.target: {target!r} is not a service{_did_you_mean(target, SERVICE_PARAMS)}")
        change = _params(SERVICE_PARAMS[target], entry["change"], f"{where}.change", faultable_for=target)
        if not change:
            raise ScenarioError(f"{where}.change: empty; say which parameters change")
        faults.append({
            "name": str(entry.get("name") or f"fault-{i}"),
            "at": parse_duration(entry["at"], f"{where}.at"),
            "target": target,
            "change": change,
            "note": str(entry.get("note") or ""),
        })
    names = [f["name"] for f in faults]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{path}: faults: two entries share a name; names must be unique")

    total = parse_duration(raw["duration"], f"{path}: duration")
    short_block = raw.get("short")
    if short_block is not None:
        if not isinstance(short_block, dict):
            raise ScenarioError(f"{path}: short: expected a map with duration and at")
        for key in short_block:
            if key not in SHORT_KEYS:
                raise ScenarioError(f"{path}: short.{key}: unknown key{_did_you_mean(key, SHORT_KEYS)}")
        at = short_block.get("at") or {}
        if not isinstance(at, dict):
            raise ScenarioError(f"{path}: short.at: expected a map of fault name to time (or null)")
        for fname in at:
            if fname not in names:
                raise ScenarioError(f"{path}: short.at.{fname}: no fault has that name{_did_you_mean(fname, names)}")
        if short:
            if "duration" in short_block:
                total = parse_duration(short_block["duration"], f"{path}: short.duration")
            kept = []
            for f in faults:
                if f["name"] in at:
                    if at[f["name"]] is None:
                        continue
                    f = dict(f, at=parse_duration(at[f["name"]], f"{path}: short.at.{f['name']}"))
                kept.append(f)
            faults = kept
    elif short:
        raise ScenarioError(f"{path}: --short given but the file has no `short:` block")
    if duration is not None:
        total = parse_duration(duration, "--duration")
    if not 0 < total <= MAX_DURATION_S:
        raise ScenarioError(f"{path}: duration {format_duration(total)} is outside 0 to {MAX_DURATION_S:g}s")
    faults.sort(key=lambda f: f["at"])
    dropped = []
    if duration is not None:
        # A run cut short on the command line keeps what fits and says so.
        dropped = [f["name"] for f in faults if f["at"] >= total]
        faults = [f for f in faults if f["at"] < total]
    for f in faults:
        if f["at"] >= total:
            raise ScenarioError(
                f"{path}: fault {f['name']!r} at {format_duration(f['at'])} is not before the end "
                f"({format_duration(total)}); lengthen the run or move the fault"
            )
    return {
        "name": name,
        "description": str(raw.get("description") or "").strip(),
        "seed": seed,
        "duration": total,
        "load": load_params,
        "services": services,
        "faults": faults,
        "dropped_faults": dropped,
        "file": str(path),
    }


def format_reference():
    """The parameter registries as text, for `runner.py check --reference`."""
    lines = ["Top-level keys:"]
    lines += [f"  {k}: {doc}" for k, doc in TOP_KEYS.items()]
    lines.append("load:")
    lines += [f"  {k} ({kind}, default {d!r}): {doc}" for k, (kind, d, doc) in LOAD_PARAMS.items()]
    for svc, table in SERVICE_PARAMS.items():
        lines.append(f"services.{svc}:")
        lines += [f"  {k} ({kind}, default {d!r}): {doc}" for k, (kind, d, doc) in table.items()]
    return "\n".join(lines)
