"""`serve`: run the demo target under gevent's WSGI server until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import sys
from typing import Any

from benchlab.runners.settings import TargetSettings

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(settings: TargetSettings) -> int:
    """Serve the demo target described by `settings`; block until SIGTERM/SIGINT; return 0.

    Raises ValueError for an unknown profile and redis errors when `redis_url` is unreachable.
    """
    # Patch before anything below creates sockets, locks or threads, so that Redis calls,
    # sleeps and the worker's thread all cooperate with gevent's loop.
    from gevent import monkey

    monkey.patch_all()

    import gevent
    from gevent.event import Event

    from benchlab.runners.demo.app import create_app, state_of
    from benchlab.runners.demo.jobqueue import open_queue
    from benchlab.runners.demo.profile import resolve_profile

    profile = resolve_profile(settings)
    queue = open_queue(settings.redis_url, settings.queue_prefix)
    app = create_app(version=settings.version, profile=profile, queue=queue, token_ttl=settings.token_ttl)
    state = state_of(app)
    server = _wsgi_server(settings, app)
    stop = Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGTERM, signal.SIGINT)]
    try:
        server.start()
        state.worker.start()
        print(
            f"benchlab target {settings.version} (profile {profile.name}) "
            f"listening on http://{settings.bind}:{server.server_port}",
            file=sys.stderr,
            flush=True,
        )
        stop.wait()
    finally:
        server.stop(timeout=5)
        state.worker.stop()
        queue.close()
        for handler in handlers:
            handler.cancel()
    return 0


def _wsgi_server(settings: TargetSettings, app: Any) -> Any:
    """gevent's WSGIServer with TCP_NODELAY on every connection.

    pywsgi sends the headers and the body with two writes; without TCP_NODELAY, Nagle's
    algorithm holds the body until the client's delayed ACK, adding ~40 ms to every
    response on a kept-alive connection.
    """
    from gevent.pywsgi import WSGIServer

    class NoDelayServer(WSGIServer):
        def handle(self, sock: Any, address: Any) -> None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle(sock, address)

    return NoDelayServer((settings.bind, settings.port), app, log=None, error_log=log)
