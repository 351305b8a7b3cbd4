"""The checkout lab's services, one role per process:

    python3 services.py ROLE --pod NAME --state DIR --truth FILE --listen IP:PORT

`runner.py` starts each inside its pod's network namespace (`ip netns
exec`), so names resolve through that namespace's resolv.conf to the lab's
dnsmasq, and every call crosses the bridge where it is captured.

    loadgen ──► frontend ──► catalogue-service ──► catalogue-db (PostgreSQL,
                  │                                 a new connection per query)
                  └────────► cart-service ──► catalogue-service
                              │  (3 tries, 20 ms apart, on 5xx and errors)
                              └──► checkout-service ──► payment-service ──► payment-gateway
                                                        (5 s timeout, bounded pool,
                                                         RST on give-up, 503)

Each role reads its parameters from `<state>/params/<role>.json`, which the
runner rewrites when the scenario's timeline injects a fault.
"""

import argparse
import json
import os
import queue
import random
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Handler, Params, Truth, Upstream, serve  # noqa: E402

PRODUCTS = 200  # rows the runner loads into catalogue-db


def status_of(res):
    """The status a service answers when a call it depended on ended
    with `res`: the upstream's 5xx as is, 504 on a timeout, 502 otherwise."""
    if res.status is not None:
        return res.status
    return 504 if res.timeout else 502


def upstream(ctx, name, pool_size=64):
    svc = ctx.topology["services"][name]
    return Upstream(ctx.truth, name, svc["host"], svc["port"], pool_size=pool_size)


# ---------------------------------------------------------------- frontend


def frontend(ctx):
    catalogue = upstream(ctx, "catalogue-service")
    cart = upstream(ctx, "cart-service")

    class H(Handler):
        def route(self, method, path, body, rc):
            t = ctx.params["timeout"]
            rid = rc["request_id"]
            base = path.split("?")[0]
            if method == "GET" and base == "/api/v1/products":
                res = catalogue.call("GET", "/api/v1/products?limit=20", timeout=t, request_id=rid)
            elif method == "GET" and base.startswith("/api/v1/products/"):
                res = catalogue.call("GET", base, timeout=t, request_id=rid)
            elif method == "GET" and base == "/api/v1/cart":
                user = path.partition("user=")[2] or "anonymous"
                res = cart.call("GET", f"/api/v1/carts/{user}", timeout=t, request_id=rid)
            elif method == "POST" and base == "/api/v1/cart/items":
                user = body.get("user", "anonymous")
                res = cart.call("POST", f"/api/v1/carts/{user}/items", body, timeout=t, request_id=rid)
            elif method == "POST" and base == "/api/v1/checkout":
                user = body.get("user", "anonymous")
                res = cart.call("POST", f"/api/v1/carts/{user}/checkout", {}, timeout=t, request_id=rid)
            else:
                return 404, {"error": f"no route {method} {base}"}
            if res.ok:
                return res.status, res.body
            return status_of(res), {"error": res.error or (res.body or {}).get("error", "upstream error")}

    return H


# ------------------------------------------------------------ cart-service


def with_retries(ctx, up, method, path, body, rid):
    """cart-service's retry policy: up to `attempts` tries, `backoff`
    apart, on a 5xx or a failed call; a 4xx is an answer, not retried."""
    p = ctx.params
    res = None
    for attempt in range(1, p["attempts"] + 1):
        res = up.call(method, path, body, timeout=p["timeout"], request_id=rid, attempt=attempt)
        if res.status is not None and res.status < 500:
            return res
        if attempt < p["attempts"]:
            time.sleep(p["backoff"])
    return res


def cart_service(ctx):
    catalogue = upstream(ctx, "catalogue-service")
    checkout = upstream(ctx, "checkout-service")
    carts = {}
    lock = threading.Lock()

    class H(Handler):
        def route(self, method, path, body, rc):
            parts = path.split("?")[0].strip("/").split("/")  # api v1 carts USER [items|checkout]
            if len(parts) < 4 or parts[:3] != ["api", "v1", "carts"]:
                return 404, {"error": "no such route"}
            user = parts[3]
            rid = rc["request_id"]
            if method == "GET" and len(parts) == 4:
                with lock:
                    return 200, {"user": user, "items": list(carts.get(user, []))}
            if method == "POST" and parts[4:] == ["items"]:
                pid = int(body.get("product_id", 1))
                res = with_retries(ctx, catalogue, "GET", f"/api/v1/products/{pid}", None, rid)
                if not res.ok:
                    return status_of(res), {"error": res.error or "catalogue error"}
                item = {"product_id": pid, "qty": int(body.get("qty", 1)), "price_cents": res.body.get("price_cents", 0)}
                with lock:
                    carts.setdefault(user, []).append(item)
                return 201, {"user": user, "added": item}
            if method == "POST" and parts[4:] == ["checkout"]:
                with lock:
                    items = list(carts.get(user, [])) or [{"product_id": 1, "qty": 1, "price_cents": 1999}]
                amount = sum(i["qty"] * i["price_cents"] for i in items)
                res = with_retries(ctx, checkout, "POST", "/api/v1/checkout",
                                   {"user": user, "items": items, "amount_cents": amount}, rid)
                if res.ok:
                    with lock:
                        carts.pop(user, None)
                    return res.status, res.body
                return status_of(res), {"error": res.error or (res.body or {}).get("error", "checkout failed")}
            return 404, {"error": "no such route"}

    return H


# -------------------------------------------------------- checkout-service


def checkout_service(ctx):
    payment = upstream(ctx, "payment-service")
    orders = iter(range(1, 1 << 62))
    lock = threading.Lock()

    class H(Handler):
        def route(self, method, path, body, rc):
            if method != "POST" or path != "/api/v1/checkout":
                return 404, {"error": "no such route"}
            with lock:
                order = f"ord-{next(orders):06d}"
            res = payment.call("POST", "/api/v1/payments",
                               {"order_id": order, "amount_cents": body.get("amount_cents", 0)},
                               timeout=ctx.params["timeout"], request_id=rc["request_id"])
            if res.ok:
                return 200, {"order_id": order, "status": "paid", "charge": res.body.get("charge_id")}
            return status_of(res), {"order_id": order, "error": res.error or (res.body or {}).get("error", "payment failed")}

    return H


# --------------------------------------------------------- payment-service


def payment_service(ctx):
    # The bounded pool: pool_size connections to the gateway at most.
    gateway = upstream(ctx, "payment-gateway", pool_size=ctx.params["pool_size"])

    class H(Handler):
        def route(self, method, path, body, rc):
            if method != "POST" or path != "/api/v1/payments":
                return 404, {"error": "no such route"}
            p = ctx.params
            res = gateway.call("POST", "/v1/charges",
                               {"amount": body.get("amount_cents", 0), "currency": "eur",
                                "reference": body.get("order_id")},
                               timeout=p["gateway_timeout"], pool_wait=p["pool_wait"],
                               request_id=rc["request_id"])
            if res.pool_exhausted:
                return 503, {"error": "gateway connection pool exhausted", "pool_exhausted": True}
            if res.timeout:
                return 503, {"error": f"gateway timed out after {p['gateway_timeout']:g}s", "timeout": True}
            if not res.ok:
                return 502, {"error": res.error or f"gateway answered {res.status}"}
            return 201, {"charge_id": res.body.get("id"), "order_id": body.get("order_id")}

    return H


# --------------------------------------------------------- payment-gateway


def payment_gateway(ctx):
    rng = random.Random(ctx.seed ^ 0x6A7E)
    lock = threading.Lock()
    charges = iter(range(1, 1 << 62))

    class H(Handler):
        def route(self, method, path, body, rc):
            if method != "POST" or path != "/v1/charges":
                return 404, {"error": "no such route"}
            p = ctx.params
            with lock:
                roll, err, gauss, n = rng.random(), rng.random(), rng.gauss(0.0, 1.0), next(charges)
            if roll < p["tail_share"]:
                delay = p["tail_latency"]
            else:
                delay = max(0.0, p["latency"] + gauss * p["jitter"])
            time.sleep(delay)
            if err < p["error_share"]:
                return 500, {"error": "processor error"}
            return 201, {"id": f"ch_{n:08d}", "status": "succeeded"}

    return H


# ------------------------------------------------------- catalogue-service


def catalogue_service(ctx):
    import pg8000.native

    db = ctx.topology["services"]["catalogue-db"]

    def query(sql, **args):
        """One query on a new connection, as the service's (bad) habit is:
        connect, query, close. Returns (rows, error, timed_out)."""
        start = time.time_ns()
        conn = None
        local = peer = None
        rows, error, timed_out = None, None, False
        try:
            t = ctx.params["db_timeout"]
            conn = pg8000.native.Connection(user="catalogue", host=db["host"], port=db["port"],
                                            database="shop", timeout=t, application_name="catalogue-service")
            sock = getattr(conn, "_usock", None)
            if sock is not None:
                local, peer = sock.getsockname()[:2], sock.getpeername()[:2]
            rows = conn.run(sql, **args)
        except Exception as e:  # pg8000 wraps socket errors in InterfaceError
            cause = e.__cause__ or e
            timed_out = isinstance(cause, (TimeoutError, socket.timeout)) or "timed out" in str(e)
            fields = e.args[0] if e.args and isinstance(e.args[0], dict) else None
            if isinstance(cause, socket.gaierror):
                error = f"dns_failure: {cause.strerror}"
            elif timed_out:
                error = "timeout"
            elif fields:  # a server error: SQLSTATE and message
                error = f"db_error: {fields.get('C', '')} {fields.get('M', '')}"
            else:
                error = f"db_error: {e}"[:300]
        finally:
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
        ctx.truth.record(
            "client", start, time.time_ns(),
            client="catalogue-service", client_pod=ctx.truth.pod,
            client_ip=local[0] if local else None, client_port=local[1] if local else None,
            server="catalogue-db", server_ip=peer[0] if peer else None, server_port=db["port"],
            protocol="postgres", method="QUERY", path=sql.split("FROM ")[1].split("(")[0],
            status=None, error=error, request_id=ctx.request_id.get(), attempt=1,
            timeout=timed_out, pool_exhausted=False, reset=False, new_connection=True,
            rows=len(rows) if rows is not None else None,
        )
        return rows, error, timed_out

    class H(Handler):
        def route(self, method, path, body, rc):
            base = path.split("?")[0]
            ctx.request_id.set(rc["request_id"])
            if method == "GET" and base == "/api/v1/products":
                rows, error, timed_out = query("SELECT id, name, price_cents FROM catalogue_products(NULL) LIMIT 20")
            elif method == "GET" and base.startswith("/api/v1/products/"):
                try:
                    pid = int(base.rsplit("/", 1)[1])
                except ValueError:
                    return 400, {"error": "product id must be a number"}
                rows, error, timed_out = query("SELECT id, name, price_cents FROM catalogue_products(:id)", id=pid)
            else:
                return 404, {"error": "no such route"}
            if error:
                return (504 if timed_out else 503), {"error": error}
            products = [{"id": r[0], "name": r[1], "price_cents": r[2]} for r in rows]
            if base == "/api/v1/products":
                return 200, {"products": products}
            if not products:
                return 404, {"error": "no such product"}
            return 200, products[0]

    return H


# ----------------------------------------------------------------- loadgen


def loadgen(ctx):
    """Users: `rate` requests per second to the frontend, steady, drawn
    from the mix; stops dispatching on SIGTERM and lets requests in flight
    finish for a few seconds."""
    p = ctx.params
    rng = random.Random(ctx.seed)
    front = upstream(ctx, "frontend", pool_size=p["workers"])
    # From another namespace a Service is `<name>.<namespace>`.
    front.host = "frontend.shop"
    jobs = queue.Queue()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def worker():
        while True:
            job = jobs.get()
            if job is None:
                return
            rid, method, path, body = job
            front.call(method, path, body, timeout=p["timeout"], request_id=rid)
            jobs.task_done()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(p["workers"])]
    for t in threads:
        t.start()
    start_ns = time.time_ns()
    with open(ctx.ready, "w") as f:
        f.write(str(start_ns))  # T0 of the scenario's timeline
    kinds, weights = zip(*p["mix"].items())
    interval = 1.0 / p["rate"]
    next_t = time.monotonic()
    seq = 0
    while not stop.is_set():
        seq += 1
        user = f"user-{rng.randrange(1, p['users'] + 1):04d}"
        kind = rng.choices(kinds, weights)[0]
        pid = rng.randrange(1, PRODUCTS + 1)
        if kind == "browse":
            job = ("GET", "/api/v1/products", None) if rng.random() < 0.5 else ("GET", f"/api/v1/products/{pid}", None)
        elif kind == "cart":
            job = (("POST", "/api/v1/cart/items", {"user": user, "product_id": pid, "qty": rng.randrange(1, 4)})
                   if rng.random() < 0.7 else ("GET", f"/api/v1/cart?user={user}", None))
        else:
            job = ("POST", "/api/v1/checkout", {"user": user})
        jobs.put((f"req-{seq:07d}",) + job)
        next_t += interval
        stop.wait(max(0.0, next_t - time.monotonic()))
    # Let requests in flight finish, so the ground truth and the capture
    # end together: a checkout retried 3 times past 5 s timeouts takes
    # about 16 s. Bounded: the runner is waiting.
    deadline = time.monotonic() + 20.0
    while jobs.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.1)


ROLES = {
    "frontend": frontend,
    "cart-service": cart_service,
    "checkout-service": checkout_service,
    "payment-service": payment_service,
    "payment-gateway": payment_gateway,
    "catalogue-service": catalogue_service,
}


class Context:
    def __init__(self, args):
        with open(os.path.join(args.state, "topology.json"), encoding="utf-8") as f:
            self.topology = json.load(f)
        self.seed = self.topology["seed"]
        self.params = Params(os.path.join(args.state, "params", f"{args.role}.json"))
        self.truth = Truth(args.truth, args.role, args.pod)
        self.ready = os.path.join(args.state, "ready", args.role)
        self.request_id = _RequestId()


class _RequestId(threading.local):
    value = ""

    def get(self):
        return self.value

    def set(self, v):
        self.value = v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("role", choices=sorted(ROLES) + ["loadgen"])
    ap.add_argument("--pod", required=True, help="this pod's name (for the truth log)")
    ap.add_argument("--state", required=True, help="the runner's state directory")
    ap.add_argument("--truth", required=True, help="ground-truth JSONL file to append to")
    ap.add_argument("--listen", help="IP:PORT to serve on (not for loadgen)")
    args = ap.parse_args()
    ctx = Context(args)
    if args.role == "loadgen":
        loadgen(ctx)
        return
    names = {v["ip"]: k for k, v in ctx.topology["services"].items()}
    names.update(ctx.topology.get("clients", {}))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    serve(ROLES[args.role](ctx), args.listen, ctx.truth, names, ctx.ready)


if __name__ == "__main__":
    main()
