"""Settings given to ours and Hypercorn (``-c python:bench_config``).

Both close a keep-alive connection after 1,000 requests by default; the other
peers have no such limit, so it is lifted for a like-for-like comparison.
"""

keep_alive_max_requests = 1_000_000_000
