"""Stand-ins for Herald's console scripts, so herald-dev's runner can be tested without them.

Usage: fake_service.py NAME [ARGS...]; NAME is the console script it pretends to be.
FAKE_CRASH_INSTANCE names a worker instance (sender-2) that exits with code 3 half a second
after each start; FAKE_CRASH_ONCE_INSTANCE one that does so the first time only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def serve(port: int, healthz: str, started_event: str) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == healthz else 404
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log(started_event, port=port)


def main() -> None:
    name, args = sys.argv[1], sys.argv[2:]
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        # A plain flag, not threading.Event().set(): the handler runs in the main thread,
        # possibly while that thread holds the Event's lock inside Event.wait(), and set()
        # would then wait for that lock for ever (seen: herald-dev SIGKILLing a stand-in
        # after its 10 s stop budget, one "stopped" line short).
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    instance = os.environ.get("HERALD_SERVICE_INSTANCE")
    if name == "herald-provider-sim":
        if args[:1] == ["token"]:
            print(f"token-for-{args[args.index('--secret') + 1]}")
            return
        port = int(args[args.index("--port") + 1])
        assert os.environ["HERALD_SIM_JWT_SECRET"]
        serve(port, "/_sim/healthz", "provider_sim_started")
    elif name == "herald-migrate":
        import psycopg

        with psycopg.connect(os.environ["HERALD_DATABASE_URL"]) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS migrated (id int)")
        log("migrated")
        return
    elif name == "herald-migrate-queues":
        log("queues_migrated", amqp=os.environ["HERALD_AMQP_URL"])
        return
    elif name == "herald-api":
        serve(int(os.environ.get("HERALD_API_PORT", "8000")), "/healthz", "api_started")
    else:
        role = name.removeprefix("herald-")
        log(f"{role}_started", instance=instance, amqp=os.environ["HERALD_AMQP_URL"])
        crash_after = os.environ.get("FAKE_CRASH_INSTANCE") == instance
        # FAKE_CRASH_ONCE_INSTANCE crashes its first run only: the marker file remembers it.
        marker = os.environ.get("FAKE_CRASH_ONCE_MARKER", "")
        if os.environ.get("FAKE_CRASH_ONCE_INSTANCE") == instance and not os.path.exists(marker):
            open(marker, "w").close()
            crash_after = True
        if crash_after:
            time.sleep(0.5)
            log("crashing", instance=instance)
            sys.exit(3)
    while not stopping:
        time.sleep(0.1)
    log("stopped", instance=instance)


if __name__ == "__main__":
    main()
