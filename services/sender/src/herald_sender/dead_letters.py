"""``herald-dead-letters``: look at the jobs in ``herald.dead`` and put them back to work.

A job lands there when a sender could not process it for a reason other than the provider
(an unreadable job, a bug, a job that crashed senders past the queue's delivery limit). Once
the cause is fixed, ``replay`` moves the jobs back into ``herald.deliver`` as fresh messages:
their messages are still in the database, and a message already settled is skipped when the
job comes back, so replaying is always safe. Unreadable jobs stay where they are.

    herald-dead-letters show                 # what is there, by mailing
    herald-dead-letters replay               # everything back into herald.deliver
    herald-dead-letters replay --mailing 42 --limit 100
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated

import typer
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from herald_common.broker import Publisher, connect
from herald_common.contracts import DeliveryJob
from herald_common.jobs import redelivery_job
from herald_common.settings import (
    EXIT_BAD_SETTINGS,
    BadSettings,
    BrokerToolSettings,
    load_settings,
)
from herald_common.topology import DEAD_QUEUE

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
console = Console()


@dataclass
class Sweep:
    """What one pass over herald.dead found and did (``show``: what it would move)."""

    moved: Counter[int] = field(default_factory=Counter)  # jobs by mailing id
    kept: Counter[int] = field(default_factory=Counter)  # another mailing's: left in place
    unreadable: int = 0

    @property
    def total_moved(self) -> int:
        return sum(self.moved.values())


async def sweep_dead_letters(
    amqp_url: str, *, replay: bool, mailing_id: int | None = None, limit: int | None = None
) -> Sweep:
    """Read every job in herald.dead; with ``replay``, republish the matching ones (confirmed)
    to herald.deliver and acknowledge them; everything else goes back where it was."""
    connection = await connect(amqp_url, "herald-dead-letters")
    sweep = Sweep()
    held: list[AbstractIncomingMessage] = []
    try:
        channel = await connection.channel()
        publisher = await Publisher.open(connection)
        queue = await channel.get_queue(DEAD_QUEUE)
        while limit is None or sweep.total_moved < limit:
            message = await queue.get(fail=False)
            if message is None:
                break
            assert isinstance(message, AbstractIncomingMessage)
            try:
                job = DeliveryJob.decode(message.body)
            except ValidationError:
                sweep.unreadable += 1
                held.append(message)
                continue
            if mailing_id is not None and job.mailing_id != mailing_id:
                sweep.kept[job.mailing_id] += 1
                held.append(message)
                continue
            if not replay:  # counted as it would move
                sweep.moved[job.mailing_id] += 1
                held.append(message)
                continue
            await publisher.publish(redelivery_job(job.mailing_id, job.message_ids))
            await message.ack()
            sweep.moved[job.mailing_id] += 1
    finally:
        # Held back unacknowledged until the end, so that the pass never reads them twice.
        for message in held:
            await message.nack(requeue=True)
        await connection.close()
    return sweep


def _report(sweep: Sweep, verb: str) -> None:
    table = Table("mailing", verb, "left in herald.dead")
    for mailing in sorted(set(sweep.moved) | set(sweep.kept)):
        table.add_row(str(mailing), str(sweep.moved[mailing]), str(sweep.kept[mailing]))
    console.print(table)
    if sweep.unreadable:
        console.print(
            f"{sweep.unreadable} unreadable job(s) left in herald.dead: not delivery jobs "
            "Herald can read; inspect them in the management UI, then purge them."
        )


def _settings() -> BrokerToolSettings:
    try:
        return load_settings(BrokerToolSettings)
    except BadSettings as error:
        for problem in error.problems:
            console.print(f"herald-dead-letters: {problem}")
        raise typer.Exit(EXIT_BAD_SETTINGS) from None


@app.command()
def show(
    mailing: Annotated[int | None, typer.Option(help="Only this mailing's jobs.")] = None,
) -> None:
    """Count the jobs in herald.dead by mailing; nothing is moved."""
    sweep = asyncio.run(sweep_dead_letters(_settings().amqp_url, replay=False, mailing_id=mailing))
    _report(sweep, "jobs")


@app.command()
def replay(
    mailing: Annotated[int | None, typer.Option(help="Only this mailing's jobs.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many.")] = None,
) -> None:
    """Move the jobs back into herald.deliver (settled messages are skipped when they come)."""
    sweep = asyncio.run(
        sweep_dead_letters(_settings().amqp_url, replay=True, mailing_id=mailing, limit=limit)
    )
    _report(sweep, "replayed")
    console.print(f"{sweep.total_moved} job(s) back in herald.deliver")


def run() -> None:
    app()
