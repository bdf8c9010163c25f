"""Test-wide setup: Locust's gevent monkey-patching must come before anything imports ssl or sockets."""

import locust  # noqa: F401
