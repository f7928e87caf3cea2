"""runwire: a server for multi-user, real-time AI agent chat.

The public API is small: build an app with :func:`create_app` from :class:`Settings` (read and
checked by :func:`load_settings`), and catch :class:`RunwireError` (see ``runwire.errors`` for
the whole tree). Everything else is internal and may change.
"""

from runwire.errors import ConfigError, RunwireError

__all__ = ["ConfigError", "RunwireError", "Settings", "__version__", "create_app", "load_settings"]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The app factory pulls in the web stack; import it only when asked for, so that the CLI's
    # light commands and the pure core stay cheap to import.
    if name == "create_app":
        from runwire.app import create_app

        return create_app
    if name in ("Settings", "load_settings"):
        from runwire import config

        return getattr(config, name)
    raise AttributeError(name)
