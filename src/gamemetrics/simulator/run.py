"""`gamemetrics simulate`: history through /v1/import, today through /v1/events, then optionally forever.

Days before today (UTC) are history and go to `/v1/import` unpaced; today's events up to now go
to `/v1/events` at `rate` events a second. With `forever`, the same players keep playing on a
compressed clock: their next events are stamped with the moment they are sent, so dashboards
see a lively game, while properties such as `duration_seconds` keep their simulated values.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gamemetrics.simulator.model import Day, Event, Simulation, as_live, rfc3339
from gamemetrics.simulator.sender import EventSender, Pacer, Tally, batched, http_client

_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """What `gamemetrics simulate` was asked to do."""

    url: str
    write_key: str
    import_key: str
    players: int
    days: int
    rate: float | None = 200.0
    seed: int = 1
    forever: bool = False


@dataclass(frozen=True, slots=True)
class SimulateReport:
    """Totals per endpoint, and whether the stream was stopped from outside."""

    history: Tally
    live: Tally
    players_seen: int
    interrupted: bool = False

    @property
    def rejected(self) -> int:
        return self.history.rejected + self.live.rejected


def simulation_for(options: SimulateOptions, now: datetime) -> Simulation:
    """The population the options describe: launched `days` days before today (UTC)."""
    start = now.astimezone(UTC).date() - timedelta(days=options.days)
    return Simulation(seed=options.seed, players=options.players, start=start, arrival_days=options.days + 1)


def run_simulation(options: SimulateOptions, *, now: datetime | None = None,
                   console: Console | None = None) -> SimulateReport:
    """Send the history, then today so far, then (with `forever`) live traffic until interrupted."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    console = console or Console(stderr=True)
    simulation = simulation_for(options, now)
    stream = simulation.days()
    seen: set[str] = set()
    interrupted = False
    with http_client(options.url) as client:
        history = EventSender(client, path="/v1/import", write_key=options.import_key)
        live = EventSender(client, path="/v1/events", write_key=options.write_key)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[note]}"), TimeElapsedColumn())
        try:
            with Progress(*columns, console=console) as progress:
                past = progress.add_task("history  /v1/import", total=options.days, note="")
                days = itertools.islice(stream, options.days)
                _deliver(history, _events_of(days, seen, lambda: progress.advance(past)), Pacer(None),
                         lambda: progress.update(past, note=_note(history.tally)))
                today = next(stream)
                seen |= today.active_players
                cut = rfc3339(now)
                due = [e for e in today.events if e["timestamp"] <= cut]
                later = [e for e in today.events if e["timestamp"] > cut]
                current = progress.add_task("today    /v1/events", total=len(due), note="")
                pacer = Pacer(options.rate)
                _deliver(live, due, pacer, lambda: progress.update(
                    current, completed=live.tally.sent, note=_note(live.tally)))
                if options.forever:
                    streaming = progress.add_task("live     /v1/events", total=None, note="")
                    sent_before = live.tally.sent
                    endless = itertools.chain(later, _events_of(stream, seen, lambda: None))
                    _deliver(live, endless, pacer, lambda: progress.update(
                        streaming, completed=live.tally.sent - sent_before, note=_note(live.tally)),
                        salt=rfc3339(now))
        except KeyboardInterrupt:
            interrupted = True
    return SimulateReport(history.tally, live.tally, len(seen), interrupted)


def _events_of(days: Iterable[Day], seen: set[str], day_done: Callable[[], None]) -> Iterator[Event]:
    for day in days:
        seen |= day.active_players
        yield from day.events
        day_done()


def _deliver(sender: EventSender, events: Iterable[Event], pacer: Pacer, after_batch: Callable[[], None],
             *, salt: str | None = None) -> None:
    """Encode, batch and post `events`; with `salt`, each is re-stamped with its send time first."""
    size = pacer.batch_size()
    for chunk in _chunks(events, size):
        pacer.wait(len(chunk))
        if salt is not None:
            # Spread the chunk over the time its pace allots it, keeping each player's order.
            at, gap = datetime.now(UTC), timedelta(seconds=1 / (pacer.rate or 1000.0))
            chunk = [as_live(e, at + gap * i, salt) for i, e in enumerate(chunk)]
        for batch in batched((_encode(e), e) for e in chunk):
            answer = sender.post(batch.bodies)
            sender.tally.add(len(batch.bodies), answer, partial(_describe, batch.sources))
        after_batch()


def _chunks(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    iterator = iter(events)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _describe(events: Sequence[Event], index: int) -> str:
    """The event at `index` of a request, as a refusal names it."""
    event = events[index]
    return f"event {event.get('event_id')} ({event.get('event_type')}, {event.get('timestamp')})"


def _note(tally: Tally) -> str:
    parts = [f"accepted {tally.accepted}"]
    if tally.rejected:
        parts.append(f"[red]rejected {tally.rejected}[/]")
    if tally.retries:
        parts.append(f"retries {tally.retries}")
    return "  ".join(parts)


def print_summary(report: SimulateReport, options: SimulateOptions, console: Console) -> None:
    """Events sent, accepted and rejected per endpoint, with the first reasons for refusals."""
    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    say(f"simulated {options.players} players over {options.days} days before today (seed {options.seed});"
        f" {report.players_seen} of them played" + (", then stopped" if report.interrupted else ""))
    for name, tally in (("history /v1/import", report.history), ("live    /v1/events", report.live)):
        say(f"  {name}: sent {tally.sent}, accepted {tally.accepted}, rejected {tally.rejected}"
            f" ({tally.requests} requests, {tally.retries} retried)")
    total = (report.history.sent + report.live.sent, report.history.accepted + report.live.accepted)
    say(f"  total: sent {total[0]}, accepted {total[1]}, rejected {report.rejected}")
    for reason in (report.history.reasons + report.live.reasons)[:20]:
        say(f"  rejected {reason}")
