"""Behind nginx: the client's address and scheme from the proxy's headers.

hypercorn --bind 127.0.0.1:8000 proxy_fix:app
"""

from hello import app as hello

from hypercorn.middleware import ProxyFixMiddleware

# One proxy in front: trust the last X-Forwarded-For entry, the one nginx appended.
app = ProxyFixMiddleware(hello, mode="legacy", trusted_hops=1)
