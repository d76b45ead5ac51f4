"""`postline simulator`: the Twilio + SendGrid simulator, its knobs as options."""

from __future__ import annotations

from pathlib import Path

import click

from postline.cli.config import load_settings, option
from postline.cli.ports import require_free


@click.command()
@option("--host", default="127.0.0.1")
@option("--port", default=8900, type=int)
@option("--latency-ms", default=0.0, type=float)
@option("--error-rate", default=0.0, type=float, help="Fraction answered 500.")
@option("--rate-429", default=0.0, type=float, help="Fraction answered 429.")
@option("--retry-after", default=1, type=int, help="Retry-After on 429s.")
@option("--callbacks/--no-callbacks", default=True, help="Send receipts.")
@option("--callback-delay-ms", default=200.0, type=float)
@option(
    "--delivery-outcome",
    default="delivered",
    type=click.Choice(["delivered", "undelivered", "failed"]),
)
@option("--sendgrid-event-webhook-url", default=None)
@option(
    "--twilio-inbound-webhook-url",
    default=None,
    help="Where POST /_sim/inbound sends Twilio's inbound message webhook.",
)
@option("--seed", default=None, type=int, help="Seed of faults, jitter and ids.")
@option(
    "--request-log",
    default=None,
    type=click.Path(path_type=Path),
    help="Append every provider call to this file as a JSON line.",
)
def simulator(
    host: str,
    port: int,
    latency_ms: float,
    error_rate: float,
    rate_429: float,
    retry_after: int,
    callbacks: bool,
    callback_delay_ms: float,
    delivery_outcome: str,
    sendgrid_event_webhook_url: str | None,
    twilio_inbound_webhook_url: str | None,
    seed: int | None,
    request_log: Path | None,
) -> None:
    """Run the Twilio + SendGrid simulator (inspect it at /_sim/requests)."""
    from postline.simulator.app import run_simulator
    from postline.simulator.config import SimulatorConfig

    require_free([(host, port, "simulator", "--port")])
    settings = load_settings(need_servers=False)
    config = SimulatorConfig(
        latency_ms=latency_ms,
        error_rate=error_rate,
        rate_429=rate_429,
        retry_after_seconds=retry_after,
        twilio_account_sid=settings.twilio_account_sid,
        twilio_auth_token=settings.twilio_auth_token,
        sendgrid_api_key=settings.sendgrid_api_key,
        callbacks_enabled=callbacks,
        callback_delay_ms=callback_delay_ms,
        delivery_outcome=delivery_outcome,
        sendgrid_event_webhook_url=sendgrid_event_webhook_url,
        twilio_inbound_webhook_url=twilio_inbound_webhook_url,
        seed=seed,
    )
    run_simulator(host, port, config, request_log)
