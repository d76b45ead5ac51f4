"""Ambiguous-outcome faults: what a provider does that leaves its client unsure.

A fault campaign needs the provider failures after which the sender cannot
know whether the message went out. The simulator can

- **hang**: hold a request `hang_ms` before handling it. If the client gives
  up meanwhile (a timeout closes the connection), the handler is cancelled
  and nothing is accepted: the call is logged `client_gone`. If the client
  waits, the request is then handled as usual.
- **reset**: accept the message (an id is issued, the call is logged as
  accepted, receipts follow) and then drop the connection without an answer.
- **accepted error**: accept the message, then answer 500, as a gateway in
  front of a provider that did take the message would.

Each call ends with exactly one outcome, and `ACCEPTING` says which outcomes
mean the provider took the message: that set, not the HTTP status, is what
a checker of "was it delivered" must read. A call's `status` is the one the
provider decided on (a reset's is the 201/202 it never sent: `answered` is
false); a `client_gone` call decided nothing and has none.
"""

from __future__ import annotations

from aiohttp import web

RESET = "reset"
ACCEPTED_ERROR = "accepted_error"

ACCEPTED = "accepted"
REFUSED = "refused"
CLIENT_GONE = "client_gone"
#: Outcomes after which the provider has the message and will deliver it.
ACCEPTING = frozenset({ACCEPTED, RESET, ACCEPTED_ERROR})
OUTCOMES = frozenset({*ACCEPTING, REFUSED, CLIENT_GONE})


def outcome_for(status: int | None) -> str:
    """The outcome of a call answered `status` with no fault after acceptance."""
    if status is None:
        return CLIENT_GONE
    return ACCEPTED if 200 <= status < 300 else REFUSED


def after_accept(fault: str | None, ok_status: int) -> tuple[int, str]:
    """(status decided, outcome) for a message just accepted; a RESET answers nothing."""
    if fault == RESET:
        return ok_status, RESET
    if fault == ACCEPTED_ERROR:
        return 500, ACCEPTED_ERROR
    return ok_status, ACCEPTED


def drop_connection(request: web.Request) -> web.Response:
    """Abort the client's connection: it sees a reset, never an answer.

    The returned response is never written (the transport is gone); aiohttp
    needs one to finish the handler.
    """
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)
