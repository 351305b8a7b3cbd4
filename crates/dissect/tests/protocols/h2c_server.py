# A tiny h2c server for trawl's live tests: prior knowledge and HTTP/1.1
# Upgrade: h2c (RFC 7540 §3.2), one thread per connection, built on the
# `h2` package. GET /hello.txt answers 200 with a fixed body; anything
# else 404.
import socket, sys, threading
import h2.config, h2.connection, h2.events

BODY = b"hello over h2\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

def respond(conn, stream, path):
    if path.split("?")[0] == "/hello.txt":
        conn.send_headers(stream, [(":status", "200"), ("content-type", "text/plain"), ("content-length", str(len(BODY)))])
        conn.send_data(stream, BODY, end_stream=True)
    else:
        conn.send_headers(stream, [(":status", "404"), ("content-length", "0")], end_stream=True)

def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    data = b""
    while len(data) < len(PREFACE) and PREFACE.startswith(data):
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk
    if data.startswith(PREFACE):
        conn.initiate_connection()
        rest = data
    else:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(headers["http2-settings"])
        respond(conn, 1, path)
    sock.sendall(conn.data_to_send())
    while True:
        if rest:
            events = conn.receive_data(rest)
            rest = b""
            for ev in events:
                if isinstance(ev, h2.events.RequestReceived):
                    respond(conn, ev.stream_id, dict(ev.headers)[b":path"].decode())
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    sock.sendall(conn.data_to_send())
                    sock.close()
                    return
            sock.sendall(conn.data_to_send())
        rest = sock.recv(65536)
        if not rest:
            sock.close()
            return

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen()
while True:
    s, _ = srv.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
