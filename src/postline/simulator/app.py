"""Build, start and run the provider simulator.

- `create_app(config, request_log=None)` wires the Twilio and SendGrid
  endpoints and the `/_sim` control routes around one `SimulatorState`;
  with `request_log`, every provider call is also appended there as a JSON
  line (see `calllog.py`).
- `running_simulator(config, host, port)` serves it in the current event
  loop for as long as the `async with` block lasts (tests, `postline dev`).
- `run_simulator(host, port, config)` is the blocking entry point behind
  `postline simulator`: uvloop when installed, stops cleanly on SIGTERM/SIGINT.

The request path has no access log and no middleware: a worker benchmark
pushes thousands of requests a second through it. Handlers are cancelled
when their client goes away, so a call's record says when it really ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from postline.simulator.calllog import CallLog
from postline.simulator.config import SimulatorConfig
from postline.simulator.control import ControlRoutes
from postline.simulator.inbound import InboundPlayer
from postline.simulator.receipts import ReceiptSender
from postline.simulator.sendgrid import MAIL_SEND_PATH, MAX_REQUEST_BYTES, SendGridEndpoint
from postline.simulator.state import SimulatorState
from postline.simulator.twilio import MESSAGES_PATH, TwilioEndpoint

logger = logging.getLogger(__name__)

STATE_KEY = web.AppKey("simulator_state", SimulatorState)
RECEIPTS_KEY = web.AppKey("simulator_receipts", ReceiptSender)

# Long enough for in-flight answers (even with a latency knob) to finish,
# short enough that stopping a test or `postline dev` never hangs.
SHUTDOWN_TIMEOUT_SECONDS = 5.0


def create_app(config: SimulatorConfig, request_log: Path | None = None) -> web.Application:
    """The simulator as an aiohttp application; `config` stays live (it is not copied)."""
    call_log = CallLog(request_log) if request_log is not None else None
    state = SimulatorState(config, call_log)
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    receipts = ReceiptSender(state)
    app[STATE_KEY] = state
    app[RECEIPTS_KEY] = receipts
    app.router.add_post(MESSAGES_PATH, TwilioEndpoint(state, receipts).handle)
    app.router.add_post(MAIL_SEND_PATH, SendGridEndpoint(state, receipts).handle)
    ControlRoutes(state).add_to(app)
    receipts.add_to(app)
    InboundPlayer(state).add_to(app)
    if call_log is not None:

        async def close_log(_: web.Application) -> None:
            call_log.close()

        app.on_cleanup.append(close_log)
    return app


@dataclass(frozen=True)
class RunningSimulator:
    """A simulator being served: where to reach it, the knobs it reads, its callbacks."""

    base_url: str
    config: SimulatorConfig
    state: SimulatorState
    receipts: ReceiptSender


def _url_host(host: str) -> str:
    # A wildcard bind is reachable on loopback; clients cannot connect to "0.0.0.0".
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@asynccontextmanager
async def running_simulator(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    request_log: Path | None = None,
) -> AsyncIterator[RunningSimulator]:
    """Serve the simulator in the current loop; port 0 picks a free port."""
    app = create_app(config, request_log)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield RunningSimulator(
            base_url=f"http://{_url_host(host)}:{bound_port}",
            config=config,
            state=app[STATE_KEY],
            receipts=app[RECEIPTS_KEY],
        )
    finally:
        await runner.cleanup()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional speed-up, not installed on Windows
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _serve_until_signalled(
    host: str, port: int, config: SimulatorConfig, request_log: Path | None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Windows loops cannot install handlers; Ctrl-C then ends the run as
        # KeyboardInterrupt, which asyncio.Runner also unwinds cleanly.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    try:
        async with running_simulator(config, host, port, request_log=request_log) as sim:
            logger.info("simulator listening base_url=%s", sim.base_url)
            await stop.wait()
            logger.info("simulator stopping")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


def run_simulator(
    host: str, port: int, config: SimulatorConfig, request_log: Path | None = None
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests and return."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_until_signalled(host, port, config, request_log))
