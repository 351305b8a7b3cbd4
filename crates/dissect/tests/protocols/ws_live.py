# WebSocket server and client for trawl's live test, on the `websockets`
# package (pip). `python3 ws_live.py server PORT MODE` echoes every
# message; `python3 ws_live.py client PORT MODE` sends text, binary, a
# fragmented text and a ping, reads the echoes and the pong, closes with
# 1000 "bye", and prints one line per message that crossed the wire:
# sender opcode payload-length frames [close-code]. MODE "plain" turns
# compression off (lengths are the payloads'); "deflate" keeps websockets'
# default permessage-deflate (lengths printed are the uncompressed ones).
import sys
from websockets.sync.client import connect
from websockets.sync.server import serve

def echo(ws):
    for msg in ws:
        ws.send(msg)

def server(port, compression):
    with serve(echo, "127.0.0.1", port, compression=compression) as s:
        s.serve_forever()

def client(port, compression):
    with connect(f"ws://127.0.0.1:{port}/echo", compression=compression) as ws:
        ws.send("hello")
        print("C text 5 1"); assert ws.recv() == "hello"; print("S text 5 1")
        ws.send(b"\x00\x01\x02")
        print("C binary 3 1"); assert ws.recv() == b"\x00\x01\x02"; print("S binary 3 1")
        # websockets sends each fragment unfinished, then an empty last frame.
        ws.send(["frag", "ment", "ed"])
        print("C text 10 4"); assert ws.recv() == "fragmented"; print("S text 10 1")
        ws.ping(b"p").wait(5)
        print("C ping 1 1"); print("S pong 1 1")
        ws.close(1000, "bye")
        print("C close 5 1 1000"); print("S close 5 1 1000")

if __name__ == "__main__":
    compression = None if sys.argv[3] == "plain" else "deflate"
    {"server": server, "client": client}[sys.argv[1]](int(sys.argv[2]), compression)
