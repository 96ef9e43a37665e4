"""A background job: every WORK_INTERVAL seconds it bumps a counter in the
store and checks that the web service answers. Ports come from locald."""
import os
import socket
import time
import urllib.request

store_port = int(os.environ["LOCALD_PORT_STORE"])
web_port = int(os.environ["LOCALD_PORT_WEB"])
interval = float(os.environ.get("WORK_INTERVAL", "2"))
greeting = os.environ.get("GREETING", "hello")

print(f"{greeting}; store on :{store_port}, web on :{web_port}")
while True:
    with socket.create_connection(("127.0.0.1", store_port), timeout=2) as conn:
        conn.sendall(b"INCR jobs\n")
        count = conn.makefile().readline().strip()
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=2) as response:
        status = response.status
    print(f"job {count} done (web answered {status})")
    time.sleep(interval)
