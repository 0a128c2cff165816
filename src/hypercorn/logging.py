"""Access and error logging: ``Logger`` and its access-log atoms.

Subclass ``Logger`` and set ``Config.logger_class`` to change how the server logs.
"""

from hypercorn.shared.logging import AccessLogAtoms, Logger

__all__ = ["AccessLogAtoms", "Logger"]
