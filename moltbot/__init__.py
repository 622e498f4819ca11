"""moltbot: a self-hosted ops agent; this package is its scheduler core.

Submodules are imported where they are used (``moltbot status`` stays fast).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
