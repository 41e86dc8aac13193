"""validation package.

``validation.check(candidate, conventions, examples=N)`` checks an implementation of the
network against refsnn (see ``validation.check`` and ``docs/validation.md``).
"""

from .check import check

__all__ = ["check"]
