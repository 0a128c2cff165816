# hypercorn -c file:hypercorn_conf.py hello:app
# A Python config file is code: imports, helpers and _private names are fine;
# every other module-level name must be a setting.
from __future__ import annotations

import os

_port = int(os.environ.get("PORT", "8000"))

bind = [f"0.0.0.0:{_port}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"
max_requests = 10_000  # replace each worker after this many requests...
max_requests_jitter = 1_000  # ...give or take, so they do not all go at once
