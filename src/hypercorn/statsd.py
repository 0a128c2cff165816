"""``StatsdLogger``: a ``Logger`` that also sends request and log metrics to statsd.

The server uses it by itself when ``statsd_host`` is set and ``logger_class``
is the default; subclass it (and set ``logger_class``) to send more.
"""

from hypercorn.shared.statsd import StatsdLogger

__all__ = ["StatsdLogger"]
