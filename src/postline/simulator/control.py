"""The simulator's own control plane, under `/_sim`.

- `GET /_sim/health` -> `{"status": "ok"}`
- `GET /_sim/config`, `PUT /_sim/config` (partial object; 400 on unknown
  keys or bad values, and then nothing changes)
- `GET /_sim/scripts`, `POST /_sim/scripts` (`{"to", "responses"}`, replaces
  that recipient's script), `DELETE /_sim/scripts[?to=]`
- `GET /_sim/requests[?to=&provider=&since_seq=&limit=]`,
  `DELETE /_sim/requests` (clears the log and the counters)
- `GET /_sim/stats`
- `GET /_sim/sendgrid/public-key`, `GET /_sim/callbacks` (in `receipts.py`)
- `POST /_sim/inbound`, `GET /_sim/inbound`: play an inbound message (in `inbound.py`)

Errors here are `{"error": {"code": "...", "message": "..."}}`, the same
envelope as Postline's own API, since these routes are Postline's and not a
provider's.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from postline.simulator.config import ConfigError, apply_config_patch, config_to_dict
from postline.simulator.scripts import ScriptError, parse_script, recipient_key
from postline.simulator.state import SimulatorState

PROVIDERS = ("twilio", "sendgrid")


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _bad_request(code: str, message: str) -> web.HTTPBadRequest:
    # aiohttp deprecates `body=` on its HTTP exceptions; `text=` is the supported way.
    text = orjson.dumps({"error": {"code": code, "message": message}}).decode()
    return web.HTTPBadRequest(text=text, content_type="application/json")


async def _read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _bad_request("invalid_json", str(exc)) from exc


def _recipient_param(request: web.Request) -> str | None:
    to = request.query.get("to")
    # An unencoded `?to=+1555...` arrives as " 1555...": recipients never hold
    # spaces, so read them back as the `+` the caller meant.
    return to.replace(" ", "+") if to else None


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise _bad_request("invalid_query", f"{name} must be an integer >= 0, got {raw!r}")
    return value


class ControlRoutes:
    """Handlers for `/_sim/*`, bound to the simulator state."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/_sim/health", self.health)
        app.router.add_get("/_sim/config", self.get_config)
        app.router.add_put("/_sim/config", self.put_config)
        app.router.add_get("/_sim/scripts", self.get_scripts)
        app.router.add_post("/_sim/scripts", self.post_script)
        app.router.add_delete("/_sim/scripts", self.delete_scripts)
        app.router.add_get("/_sim/requests", self.get_requests)
        app.router.add_delete("/_sim/requests", self.delete_requests)
        app.router.add_get("/_sim/stats", self.get_stats)

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def get_config(self, request: web.Request) -> web.Response:
        return _json(config_to_dict(self._state.config))

    async def put_config(self, request: web.Request) -> web.Response:
        patch = await _read_json(request)
        try:
            changed = apply_config_patch(self._state.config, patch)
        except ConfigError as exc:
            return _error("invalid_config", str(exc))
        if "seed" in changed:
            # Setting the seed (even to the same value) restarts the sequence,
            # which is what a test wants when it replays a scenario.
            self._state.reseed()
        return _json(config_to_dict(self._state.config))

    async def get_scripts(self, request: web.Request) -> web.Response:
        return _json({"scripts": self._state.scripts.snapshot()})

    async def post_script(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        try:
            key, items = parse_script(body)
        except ScriptError as exc:
            return _error("invalid_script", str(exc))
        self._state.scripts.set(key, items)
        return _json({"to": key, "responses": [item.to_dict() for item in items]}, 201)

    async def delete_scripts(self, request: web.Request) -> web.Response:
        to = _recipient_param(request)
        dropped = self._state.scripts.clear(recipient_key(to) if to else None)
        return _json({"cleared": dropped})

    async def get_requests(self, request: web.Request) -> web.Response:
        provider = request.query.get("provider") or None
        if provider is not None and provider not in PROVIDERS:
            return _error("invalid_query", f"provider must be one of {', '.join(PROVIDERS)}")
        records = self._state.requests(
            to=_recipient_param(request),
            provider=provider,
            since_seq=_int_param(request, "since_seq"),
            limit=_int_param(request, "limit"),
        )
        return _json({"requests": records})

    async def delete_requests(self, request: web.Request) -> web.Response:
        self._state.clear_requests()
        return _json({"cleared": True})

    async def get_stats(self, request: web.Request) -> web.Response:
        return _json(self._state.stats())
