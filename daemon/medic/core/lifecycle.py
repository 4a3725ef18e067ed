"""Long-lived parts started in order and stopped in reverse, under one
``AsyncExitStack`` (aiohttp's cleanup contexts, mode's services).

A part is a name and an async context manager (often a start and a close
made into one by ``pair``): entering it opens what the part owns (a
connection, a session, tasks), leaving it closes that. Nothing is opened
before its part is entered. ``Lifecycle.open`` enters the parts one
after the other; if one fails to start, the parts already started are closed
in reverse and the start's error goes on. ``Lifecycle.close`` closes every
part in reverse: a part that fails to close is logged (``lifecycle.close_failed``)
and the others still close; then ``TeardownError`` names the ones that failed.

Which parts there are, and their order, is the orchestrator's business
(``ControlPlaneOrchestrator.parts``); this module only runs a list.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from medic.core.errors import MedicError
from medic.core.logging import get_logger

log = get_logger("Lifecycle")

Step = Callable[[], object] | None
"""A part's start or close: plain or async, or None for nothing to do."""


@dataclass(frozen=True)
class Part:
    """One long-lived part: entered to start it, left to stop it."""

    name: str
    context: AbstractAsyncContextManager[Any]


@asynccontextmanager
async def pair(start: Step, close: Step) -> AsyncIterator[None]:
    """A part made of a start and a close. The close also runs when the start
    fails part-way (a few processes started, a connection made), so it must
    be safe on a part that never fully started."""
    try:
        await _call(start)
        yield
    finally:
        await _call(close)


async def _call(step: Step) -> None:
    result = step() if step is not None else None
    if inspect.isawaitable(result):
        await result


class TeardownError(MedicError):
    """Parts failed to close (each was logged as it failed); the others closed."""

    def __init__(self, failures: list[tuple[str, Exception]]) -> None:
        self.failures = failures
        super().__init__(
            "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        )

    @property
    def parts(self) -> list[str]:
        return [name for name, _exc in self.failures]


class Lifecycle:
    """Parts entered in order on one ``AsyncExitStack``, closed in reverse."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._failures: list[tuple[str, Exception]] = []
        self.started: list[str] = []
        """The names of the parts entered so far, in order."""

    async def open(self, parts: Iterable[Part]) -> None:
        """Enter each part in turn; on a failure, close what started and re-raise."""
        try:
            for part in parts:
                await self._enter(part)
        except BaseException as exc:
            await self._unwind(exc)
            self._failures.clear()  # logged; the start's own error is the one to report
            raise

    async def close(self) -> None:
        """Close every started part in reverse; ``TeardownError`` if any failed."""
        await self._unwind(None)
        failures, self._failures = self._failures, []
        if failures:
            raise TeardownError(failures)

    async def _enter(self, part: Part) -> None:
        await part.context.__aenter__()
        self.started.append(part.name)
        self._stack.push_async_exit(self._closer(part))

    async def _unwind(self, exc: BaseException | None) -> None:
        stack, self._stack = self._stack, AsyncExitStack()
        if exc is None:
            await stack.aclose()
        else:
            # The parts see why they stop; the error itself goes on from open().
            await stack.__aexit__(type(exc), exc, exc.__traceback__)

    def _closer(self, part: Part) -> Any:
        async def close(
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> bool:
            try:
                await part.context.__aexit__(exc_type, exc, tb)
            except Exception as error:  # noqa: BLE001 - collected: the other parts still close
                if error is not exc:
                    self._failed(part.name, error)
            finally:
                self.started.pop()  # this part: the last one still started
            return False  # never swallow the error that stops the parts

        return close

    def _failed(self, name: str, error: Exception) -> None:
        log.error(
            "lifecycle.close_failed",
            message="A part failed to close; the others still close",
            part=name,
            error=f"{type(error).__name__}: {error}",
            exc_info=error,
        )
        self._failures.append((name, error))
