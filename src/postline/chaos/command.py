"""`postline chaos`: the fault campaign's command line (attached to `postline` by `register`).

Thin: reads the options (each falls back to the CHAOS_* variable `--help`
names), then hands over to `campaign`. Exit status: 0 when lost, unexplained
duplicates, order and one-at-a-time violations are all zero; 1 when any is
not; 2 when the campaign itself could not run.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _option(name: str, env: str, **kwargs: Any) -> Callable[[F], F]:
    return click.option(name, envvar=f"CHAOS_{env}", show_envvar=True, **kwargs)


@click.command()
@_option(
    "--duration",
    "DURATION",
    default=60.0,
    type=click.FloatRange(min=1),
    help="Seconds of load under faults.",
)
@_option(
    "--seed",
    "SEED",
    default=None,
    type=int,
    help="Seeds the faults and the load; printed, so a run can be replayed. [default: random]",
)
@_option(
    "--rate", "RATE", default=150.0, type=click.FloatRange(min=0.1), help="Messages per second."
)
@_option("--keys", "KEYS", default=100, type=click.IntRange(min=1), help="Ordering keys.")
@_option("--workers", "WORKERS", default=3, type=click.IntRange(min=1), help="Worker processes.")
@_option(
    "--out",
    "OUT",
    default=None,
    type=click.Path(path_type=Path),
    help="Run folder for logs and report. [default: .postline/chaos/<time>-seed<N>]",
)
@_option(
    "--drain",
    "DRAIN",
    default=None,
    type=click.FloatRange(min=0),
    help="Most seconds to wait for the work to settle. [default: reconcile interval + "
    "visibility timeout + 30]",
)
@_option(
    "--faults",
    "FAULTS",
    default=None,
    help="Comma-separated fault kinds to draw from, or `none` for a run without faults. "
    "[default: all]",
)
@click.option("--keep-data", is_flag=True, help="Keep the PostgreSQL and Redis data folders.")
@click.option("--check", "check_dir", default=None, type=click.Path(path_type=Path, exists=True),
              help="Judge an earlier run folder again; starts nothing.")  # fmt: skip
def chaos(
    duration: float,
    seed: int | None,
    rate: float,
    keys: int,
    workers: int,
    out: Path | None,
    drain: float | None,
    faults: str | None,
    keep_data: bool,
    check_dir: Path | None,
) -> None:
    """Fault campaign: open-loop load while seeded faults hit, then check the provider's log."""
    from postline import logs
    from postline.chaos import campaign, plan

    logs.configure(level="WARNING")
    if check_dir is not None:
        sys.exit(campaign.check_run(check_dir, click.echo))
    try:
        names = None if faults is None else {n.strip() for n in faults.split(",")} - {"none", ""}
        kinds = plan.select(names)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; known: {', '.join(sorted(plan.KIND_NAMES))}") from exc
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
        drain=campaign.DRAIN_SECONDS if drain is None else drain,
        keep_data=keep_data,
        kinds=kinds,
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


def register(main: click.Group) -> None:
    main.add_command(chaos)
