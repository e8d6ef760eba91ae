"""Where sweep tasks run: in this process, in local worker processes, or on a Dask cluster.

All three take the same pure, picklable task function and hand results back as they finish
(:func:`run_unordered`). Tasks are submitted lazily through a window of a few per worker, so the
driver can fold what finished tasks learnt (new search results) into the tasks it submits next.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from gemmap.errors import GemmapError

#: seconds to wait for a Dask scheduler before giving up (an unreachable address fails fast)
CONNECT_TIMEOUT = 5.0


class Executor(Protocol):
    #: how many tasks to keep in flight
    slots: int

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None: ...

    def next_done(self) -> Any:
        """Block until a submitted task finishes and return its result (re-raising its error)."""
        ...


class InlineExecutor:
    """Runs each task in this process when its result is asked for."""

    slots = 1

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Callable[[Any], Any], Any]] = collections.deque()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self._queue.append((fn, arg))

    def next_done(self) -> Any:
        fn, arg = self._queue.popleft()
        return fn(arg)


def _worker_init(driver_pid: int) -> None:
    # the driver owns Ctrl-C: it stops the workers itself, after keeping what has finished
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    # a driver killed outright (SIGKILL) cannot stop its workers: they notice and leave
    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(driver_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # pragma: no cover - the pid was reused by another user
                os._exit(1)

    threading.Thread(target=watch, name="gemmap-driver-watch", daemon=True).start()


class ProcessExecutor:
    """``workers`` local processes (forkserver on POSIX: fast and safe next to the driver's threads)."""

    def __init__(self, workers: int, preload: tuple[str, ...] = ()) -> None:
        method = "forkserver" if sys.platform != "win32" else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver" and preload:
            ctx.set_forkserver_preload(list(preload))
        self.slots = 2 * workers
        self._pool = cf.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(os.getpid(),)
        )
        self._pending: set[cf.Future[Any]] = set()

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self._pending.add(self._pool.submit(fn, arg))

    def next_done(self) -> Any:
        done, _ = cf.wait(self._pending, return_when=cf.FIRST_COMPLETED)
        fut = min(done, key=id)
        self._pending.discard(fut)
        return fut.result()

    def close(self, interrupted: bool) -> None:
        if not interrupted:
            self._pool.shutdown(wait=True)
            return
        procs = list((getattr(self._pool, "_processes", None) or {}).values())  # shutdown forgets them
        terminate = getattr(self._pool, "terminate_workers", None)  # Python ≥ 3.14
        if terminate is not None:
            terminate()
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.terminate()
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.join(timeout=5)
        with contextlib.suppress(Exception):  # the pool's manager sees the dead workers and closes its queues
            self._pool.shutdown(wait=True)


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Fail within ``timeout`` seconds, with one line, if no Dask scheduler answers at ``address``
    (checked before a Client exists: a Client that failed to connect takes seconds to die)."""
    import asyncio
    import socket

    from distributed.comm import connect
    from distributed.comm.addressing import parse_address, parse_host_port

    where = f"cannot reach the Dask scheduler at '{address}'"
    try:
        scheme, loc = parse_address(address if "://" in address else f"tcp://{address}")
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(loc)
            socket.create_connection((host, port), timeout=timeout).close()  # refused: fail now, not at timeout
    except (OSError, ValueError, TypeError) as exc:
        raise GemmapError(f"{where} ({exc.strerror or exc if isinstance(exc, OSError) else exc})") from None

    async def handshake() -> None:
        comm = await connect(address, timeout=timeout)
        await comm.close()

    try:
        asyncio.run(asyncio.wait_for(handshake(), timeout + 1))
    except Exception as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
        raise GemmapError(f"{where} within {timeout:g} s ({detail})") from None


class DaskExecutor:
    """Tasks on an existing ``dask.distributed`` cluster at ``address``."""

    def __init__(self, address: str, timeout: float = CONNECT_TIMEOUT) -> None:
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise GemmapError(
                "--scheduler needs dask.distributed, which is not installed: pip install 'gemmap[dask]'"
            ) from None
        quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "distributed.comm")]
        levels = [q.level for q in quiet]
        for q in quiet:
            q.setLevel(logging.CRITICAL)
        try:
            if not address.startswith("inproc://"):
                check_scheduler(address, timeout)
            self._client = Client(address, timeout=timeout, set_as_default=False)
        except GemmapError:
            raise
        except Exception as exc:
            detail = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
            raise GemmapError(f"cannot reach the Dask scheduler at '{address}' ({detail})") from None
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
        threads = sum(self._client.nthreads().values()) or 1
        self.slots = 2 * threads
        self._done = as_completed(loop=self._client.loop)

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        self._done.add(self._client.submit(fn, arg, pure=False))

    def next_done(self) -> Any:
        return next(self._done).result()

    def close(self, interrupted: bool) -> None:
        with contextlib.suppress(Exception):
            if interrupted:
                self._client.cancel(list(self._done.futures))
        with contextlib.suppress(Exception):
            self._client.close(timeout=5)


@contextlib.contextmanager
def open_executor(workers: int = 1, scheduler: str | None = None, preload: tuple[str, ...] = ()) -> Iterator[Executor]:
    """The executor for ``--workers`` / ``--scheduler``; connects (or fails) before yielding."""
    if workers < 1:
        raise GemmapError(f"--workers must be a positive whole number, got {workers}")
    ex: InlineExecutor | ProcessExecutor | DaskExecutor
    if scheduler is not None:
        ex = DaskExecutor(scheduler)
    elif workers > 1:
        ex = ProcessExecutor(workers, preload)
    else:
        yield InlineExecutor()
        return
    interrupted = True
    try:
        yield ex
        interrupted = False
    finally:
        ex.close(interrupted)


def run_unordered(ex: Executor, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """Results of ``fn`` over ``items`` as they finish. ``items`` is consumed lazily — the next item
    is drawn only after the consumer has handled a result — so it may depend on earlier results."""
    it = iter(items)
    in_flight = 0
    for arg in it:
        ex.submit(fn, arg)
        in_flight += 1
        if in_flight >= ex.slots:
            break
    while in_flight:
        result = ex.next_done()
        in_flight -= 1
        yield result
        for arg in it:
            ex.submit(fn, arg)
            in_flight += 1
            break
