"""A tiny line-based key-value store: `SET key value`, `GET key`, `INCR key`.

It listens on 127.0.0.1:$PORT (locald assigns the port) and stands in for the
database a real project would depend on."""
import os
import socketserver

DATA = {}


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            parts = raw.decode(errors="replace").split(maxsplit=2)
            if not parts:
                continue
            command = parts[0].upper()
            if command == "SET" and len(parts) == 3:
                DATA[parts[1]] = parts[2].strip()
                reply = "OK"
            elif command == "GET" and len(parts) == 2:
                reply = DATA.get(parts[1], "")
            elif command == "INCR" and len(parts) == 2:
                DATA[parts[1]] = str(int(DATA.get(parts[1], "0")) + 1)
                reply = DATA[parts[1]]
            else:
                reply = "ERR usage: SET k v | GET k | INCR k"
            self.wfile.write((reply + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


port = int(os.environ["PORT"])
with Server(("127.0.0.1", port), Handler) as server:
    print(f"store listening on 127.0.0.1:{port}")
    server.serve_forever()
