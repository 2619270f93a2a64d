"""Exceptions and warnings that are part of the public API."""

from __future__ import annotations


class BudgetExceededError(BaseException):
    """A budget was spent.

    Derives from BaseException (as documented since the first tokenspy) so that a broad
    ``except Exception`` in user code cannot swallow a hard budget stop.
    """

    def __init__(self, spent: float, budget: float, project: str | None = None) -> None:
        self.spent = float(spent)
        self.budget = float(budget)
        self.project = project
        where = f" for project {project!r}" if project else ""
        super().__init__(f"budget exceeded{where}: spent ${self.spent:.6f} of ${self.budget:.6f}")

    def __reduce__(self):  # keep it picklable across processes (xdist, multiprocessing)
        return (type(self), (self.spent, self.budget, self.project))


class LocalRateLimitError(Exception):
    """A local requests-per-minute or tokens-per-minute limit would be exceeded."""

    def __init__(self, limit_type: str, limit_value: int, retry_after: float) -> None:
        self.limit_type = limit_type
        self.limit_value = limit_value
        self.retry_after = float(retry_after)
        super().__init__(f"{limit_type} limit of {limit_value}/min reached; retry after {self.retry_after:.2f}s")

    def __reduce__(self):
        return (type(self), (self.limit_type, self.limit_value, self.retry_after))


class PricingMatrixOutdatedWarning(UserWarning):
    """A model has no known price: its tokens are recorded with cost 0 and ``priced=False``."""


class TokenspyWarning(UserWarning):
    """tokenspy itself hit a problem (the user's call went through untouched)."""


class TokenizerUnavailableWarning(TokenspyWarning):
    """A BPE encoding could not be loaded: token counts fall back to a documented approximation.

    Issued once per encoding and process; the affected counts come back with ``exact=False``.
    """


def safe_warn(message: str, category: type[Warning], stacklevel: int = 1) -> None:
    """``warnings.warn`` that never raises: tokenspy warns from inside the user's calls, its
    writer thread and exit handlers, where a filter that turns warnings into errors (``-W error``,
    ``filterwarnings = error``) must not break the call, kill the thread or lose rows."""
    import warnings

    try:
        warnings.warn(message, category, stacklevel=stacklevel + 1)
    except Exception:
        pass
