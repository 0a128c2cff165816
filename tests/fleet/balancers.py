"""The load balancers' configurations: what the fleet test runs, and what we ship.

``haproxy_config`` and ``nginx_config`` render one configuration from the list
of hosts and the paths of the run; ``contrib/haproxy/haproxy.cfg`` and
``contrib/nginx/hypercorn-fleet.conf`` are the same functions' output for an
example fleet (a test keeps them equal), so the shipped examples are the ones
the fleet scenarios prove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EXAMPLE", "Backend", "haproxy_config", "nginx_config"]

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"


@dataclass(frozen=True)
class Backend:
    """Where the balancer listens and what it balances over."""

    listen: str  # address:port the clients connect to
    servers: Sequence[tuple[str, str]]  # (name, address) of each host
    run: str  # directory for the pid file, the admin socket, logs and temp files
    port: int = 8000  # each host's --bind port
    health_port: int = 8081  # each host's --health-bind port
    check_ms: int = 250  # haproxy's health-check interval


EXAMPLE = Backend(
    listen="0.0.0.0:80",
    servers=[("app1", "10.0.0.11"), ("app2", "10.0.0.12"), ("app3", "10.0.0.13")],
    run="/run/haproxy",
    check_ms=1000,
)
EXAMPLE_NGINX = Backend(listen="80", servers=EXAMPLE.servers, run="/var/lib/nginx")


def haproxy_config(backend: Backend) -> str:
    """haproxy: active HTTP checks on ``/readyz``, replays of requests no server answered."""
    servers = "".join(
        f"  server {name} {address}:{backend.port}\n" for name, address in backend.servers
    )
    return f"""\
# haproxy in front of hypercorn masters, each with --health-bind :{backend.health_port}.
# A host leaves the rotation when /readyz answers 503 (starting, draining before a
# stop or deploy, degraded after a refused deploy) for two checks in a row, and
# comes back after two 200s. A request that found no server (refused connection)
# or got no response (a host killed mid-request) is replayed on another server.
global
  pidfile {backend.run}/haproxy.pid
  stats socket {backend.run}/haproxy.sock mode 600 level admin
  maxconn 4096

defaults
  mode http
  option http-keep-alive
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout http-keep-alive 10s
  timeout tunnel 1h                       # WebSocket connections
  retries 3
  retry-on conn-failure empty-response
  option redispatch 1                     # each retry on another server

frontend web
  bind {backend.listen}
  default_backend hypercorn

backend hypercorn
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server check port {backend.health_port} inter {backend.check_ms}ms fall 2 rise 2
{servers}"""


def nginx_config(backend: Backend) -> str:
    """nginx (open source): upstream keep-alive, passive health, retries on errors."""
    servers = "".join(
        f"    server {address}:{backend.port} max_fails=1 fail_timeout=5s;\n"
        for _, address in backend.servers
    )
    run = backend.run
    return f"""\
# nginx in front of hypercorn masters. Open-source nginx has no active health
# checks: a host leaves the rotation for fail_timeout after a refused or failed
# connection (passive health), and the request is tried on the next host. A
# drained host still gets requests until it stops, so drain_delay does not help
# here; rolling reloads (HUP) and upgrades (USR2) keep the listeners open, and
# lose nothing either way.
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/nginx-error.log warn;
events {{ worker_connections 1024; }}

http {{
  access_log off;
  client_body_temp_path {run}/body; proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi; uwsgi_temp_path {run}/uwsgi; scgi_temp_path {run}/scgi;

  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}

  upstream hypercorn {{
{servers}    keepalive 32;                         # idle connections kept to the hosts
  }}

  server {{
    listen {backend.listen};
    location / {{
      proxy_pass http://hypercorn;
      proxy_http_version 1.1;             # keep-alive and Upgrade need it
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;   # "" keeps the upstream alive
      proxy_connect_timeout 1s;
      proxy_read_timeout 1h;              # WebSocket connections
      proxy_next_upstream error timeout;  # idempotent requests only
      proxy_next_upstream_tries 3;
    }}
  }}
}}
"""


def shipped() -> dict[Path, str]:
    """The example files in contrib/ and the text each must have."""
    return {
        CONTRIB / "haproxy" / "haproxy.cfg": haproxy_config(EXAMPLE),
        CONTRIB / "nginx" / "hypercorn-fleet.conf": nginx_config(EXAMPLE_NGINX),
    }


if __name__ == "__main__":  # regenerate the shipped examples
    for path, text in shipped().items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
