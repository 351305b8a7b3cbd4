# gRPC server and client for trawl's live test, on grpcio without protoc:
# generic handlers pass messages as raw bytes (protobuf built by hand).
# `python3 grpc_live.py server PORT` serves helloworld.Greeter;
# `python3 grpc_live.py client PORT` makes three calls and prints one line
# per call: method, status code, messages received.
import sys
from concurrent import futures
import grpc

HELLO = b"\x0a\x0bhello world"  # field 1: "hello world"

def say_hello(request, context):
    if request == b"\x0a\x04fail":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such user: \u00e9")
    return HELLO

def count(request, context):
    for i in range(3):
        yield bytes([0x08, i + 1])  # field 1: i + 1

def server(port):
    handler = grpc.method_handlers_generic_handler("helloworld.Greeter", {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "Count": grpc.unary_stream_rpc_method_handler(count),
    })
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers((handler,))
    s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    s.wait_for_termination()

def client(port):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        hello = ch.unary_unary("/helloworld.Greeter/SayHello")
        reply = hello(b"\x0a\x05world", timeout=10)
        print("SayHello", 0, 1 if reply == HELLO else -1)
        try:
            hello(b"\x0a\x04fail", timeout=10)
            print("SayHello", 0, 1)
        except grpc.RpcError as e:
            print("SayHello", e.code().value[0], 0, e.details())
        replies = list(ch.unary_stream("/helloworld.Greeter/Count")(b"", timeout=10))
        print("Count", 0, len(replies))

if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](int(sys.argv[2]))
