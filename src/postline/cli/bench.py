"""`postline bench` and `postline chaos`: the service measured, and the service under faults.

Thin: each reads its options, then hands over to `postline.bench.run` or
`postline.chaos.campaign`. `chaos` exits 0 when lost, unexplained duplicates,
order and one-at-a-time violations are all zero; 1 when any is not; 2 when
the campaign itself could not run.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import click

from postline.cli.config import option, switch


@click.command()
@option("--messages", "-n", default=10_000, type=int, help="Messages per scenario.")
@option("--concurrency", "-c", default=64, type=int, help="Concurrent clients.")
@option("--batch", default=0, type=int, help="Messages per request (batch endpoint).")
@option("--runs", default=3, type=int, help="Repetitions; the median is reported.")
@option("--worker-concurrency", default=256, type=int, help="Sends in flight per worker.")
@option(
    "--scenario",
    multiple=True,
    type=click.Choice(["accept", "accept-2000", "drain", "both", "drain-100ms", "both-100ms"]),
    help="Scenarios to run (default: all).",
)
def bench(
    messages: int,
    concurrency: int,
    batch: int,
    runs: int,
    worker_concurrency: int,
    scenario: tuple[str, ...],
) -> None:
    """Measure accept rate and latency, and delivery through one worker.

    Uses DATABASE_URL/REDIS_URL when set (a fresh `postline_bench` database is
    created; the Redis database given is FLUSHED), else embedded servers.
    """
    from postline import logs
    from postline.bench.run import ALL_SCENARIOS, run

    logs.configure(level="WARNING")
    chosen = scenario or (("accept",) if batch else ALL_SCENARIOS)
    run(
        messages=messages,
        concurrency=concurrency,
        batch=batch,
        runs=runs,
        scenarios=chosen,
        worker_concurrency=worker_concurrency,
    )


@click.command()
@option(
    "--duration",
    default=60.0,
    type=click.FloatRange(min=1),
    help="Seconds of load under faults.",
)
@option(
    "--seed",
    default=None,
    type=int,
    help="Seeds the faults and the load; printed, so a run can be replayed. [default: random]",
)
@option("--rate", default=150.0, type=click.FloatRange(min=0.1), help="Messages per second.")
@option("--keys", default=100, type=click.IntRange(min=1), help="Ordering keys.")
@option("--workers", default=3, type=click.IntRange(min=1), help="Worker processes.")
@option(
    "--out",
    default=None,
    type=click.Path(path_type=Path),
    help="Run folder for logs and report. [default: .postline/chaos/<time>-seed<N>]",
)
@option(
    "--drain",
    default=None,
    type=click.FloatRange(min=0),
    help="Most seconds to wait for the work to settle. [default: reconcile interval + "
    "visibility timeout + 30, and 30 more with pacing]",
)
@option(
    "--faults",
    default=None,
    help="Comma-separated fault kinds to draw from, or `none` for a run without faults. "
    "[default: all]",
)
@option(
    "--features",
    default=None,
    help="Comma-separated features to run beyond Postline's defaults: `failover` (a backup "
    "Twilio account, and `route_down` faults of the primary), `pacing` (a paced sender, an "
    "account concurrency cap, and `provider_throttle` faults). [default: none]",
)
@switch("--keep-data", help="Keep the PostgreSQL and Redis data folders.")
@option(
    "--check",
    default=None,
    type=click.Path(path_type=Path, exists=True),
    help="Judge an earlier run folder again; starts nothing.",
    allow_from_autoenv=False,  # a mode, not a setting (see postline.cli.config)
    show_envvar=False,
)
def chaos(
    duration: float,
    seed: int | None,
    rate: float,
    keys: int,
    workers: int,
    out: Path | None,
    drain: float | None,
    faults: str | None,
    features: str | None,
    keep_data: bool,
    check: Path | None,
) -> None:
    """Fault campaign: open-loop load while seeded faults hit, then check the provider's log."""
    from postline import logs
    from postline.chaos import campaign, plan
    from postline.chaos.features import Features

    logs.configure(level="WARNING")
    if check is not None:
        sys.exit(campaign.check_run(check, click.echo))
    try:
        chosen = Features.parse(features)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--features") from exc
    try:
        names = None if faults is None else {n.strip() for n in faults.split(",")} - {"none", ""}
        kinds = plan.select(names, chosen.names)
    except ValueError as exc:
        known = ", ".join(sorted(plan.ALL_KIND_NAMES))
        raise click.BadParameter(f"{exc}; known: {known}", param_hint="--faults") from exc
    if seed is None:
        seed = random.SystemRandom().randrange(1, 1_000_000)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    spec = campaign.CampaignSpec(
        duration=duration,
        seed=seed,
        rate=rate,
        keys=keys,
        workers=workers,
        # Absolute: the children run inside it, so a relative path would resolve twice.
        run_dir=(out or Path(".postline") / "chaos" / f"{stamp}-seed{seed}").resolve(),
        drain=campaign.default_drain(chosen) if drain is None else drain,
        keep_data=keep_data,
        kinds=kinds,
        features=chosen,
    )
    try:
        code = campaign.run(spec, click.echo)
    except KeyboardInterrupt:
        click.echo("chaos: interrupted; everything it started is stopped", err=True)
        sys.exit(130)
    except Exception as exc:  # the campaign could not run: not a verdict on Postline
        click.echo(f"chaos: the campaign failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)
