"""One Locust worker process of `benchlab run --workers N`: it writes its own samples under the master's run id."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import gevent
import locust
from locust.env import Environment

from benchlab.metrics.collector import Observer, RequestCollector
from benchlab.metrics.exporter import REPORT_KEY, Tally
from benchlab.metrics.store.writer import WriterProcess
from benchlab.runners.settings import WorkerConfig
from benchlab.runners.swarm import load_users


def serve(config: WorkerConfig) -> dict[str, Any]:
    """Connect to the master, run users until it says quit, flush every sample; return this worker's report."""
    users = load_users(Path(config.locustfile), config.user_classes)
    tally = Tally()
    sink = WriterProcess(store=config.store, run_id=config.run_id, worker=config.worker)
    observers: list[Observer] = [tally.observe] if config.tally else []
    collector = RequestCollector(sink=sink, run_id=config.run_id, observers=observers).start()
    env = Environment(user_classes=users, host=config.host or None, events=locust.events)  # None: the classes' own
    env.events.request.add_listener(collector.on_request)
    if config.tally:
        # The master's /metrics sums the cumulative tallies that ride along with each stats report.
        env.events.report_to_master.add_listener(lambda client_id, data: data.update({REPORT_KEY: tally.snapshot()}))
    runner = env.create_worker_runner("127.0.0.1", config.master_port)
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    # SIGINT goes to the whole process group on Ctrl-C: the master decides; SIGTERM stops this worker cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gevent.signal_handler(signal.SIGTERM, runner.quit)
    runner.greenlet.join()
    stats = collector.stop()
    return {
        "worker": config.worker,
        "received": stats.received,
        "stored": stats.stored,
        "spooled": stats.spooled,
        "replayed": stats.replayed,
        "pending": stats.pending,
    }


def main() -> int:
    """Entry point: `python -m benchlab.runners.worker '<json payload>'`; the last stdout line is the JSON report."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    report = serve(WorkerConfig.from_json(sys.argv[1]))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
