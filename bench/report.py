"""Printing the results (rich tables) and writing them as JSON."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
from hotspots import Profile
from phases import DeliveryResult, FanInResult, Latencies, LoadResult
from rich.console import Console
from rich.table import Table

__all__ = ["Results", "print_results", "write_json"]

TARGET_RATE_C64 = 3000.0
TARGET_DELIVERY_P99_MS = 20.0
BUSY_OTHER_PCT = 25.0


@dataclasses.dataclass
class Results:
    meta: dict[str, Any]
    ceiling: list[LoadResult] = dataclasses.field(default_factory=list)
    health: list[LoadResult] = dataclasses.field(default_factory=list)
    send: list[LoadResult] = dataclasses.field(default_factory=list)
    delivery: DeliveryResult | None = None
    fan_in: FanInResult | None = None
    footprint: dict[str, Any] = dataclasses.field(default_factory=dict)
    profile_run: LoadResult | None = None
    profile: Profile | None = None

    def busy_phases(self) -> list[str]:
        """Phases during which something besides the server and the generator ran."""
        out = []
        for r in [*self.ceiling, *self.health, *self.send]:
            if (r.other_cpu_pct or 0) > BUSY_OTHER_PCT:
                out.append(f"{r.label} c={r.concurrency}")
        for label, x in (("delivery", self.delivery), ("fan-in", self.fan_in)):
            if x is not None and (x.other_cpu_pct or 0) > BUSY_OTHER_PCT:
                out.append(label)
        return out

    def targets(self) -> dict[str, Any]:
        c64 = next((r for r in self.send if r.concurrency == 64), None)
        p99 = self.delivery.delivery.p99_ms if self.delivery else None
        return {
            "send_rate_c64": {
                "target": TARGET_RATE_C64,
                "measured": c64.rate if c64 else None,
                "met": bool(c64 and not c64.errors and c64.rate >= TARGET_RATE_C64),
            },
            "delivery_p99_ms": {
                "target": TARGET_DELIVERY_P99_MS,
                "measured": p99,
                "met": p99 is not None
                and p99 < TARGET_DELIVERY_P99_MS
                and self.delivery is not None
                and self.delivery.delivered == self.delivery.messages,
            },
        }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _lat(lat: Latencies) -> tuple[str, str, str]:
    return _ms(lat.p50_ms), _ms(lat.p99_ms), _ms(lat.max_ms)


def _kib(v: int | None) -> str:
    return "-" if v is None else f"{v / 1024:.1f} MiB"


def print_results(res: Results, console: Console) -> None:
    m = res.meta
    dirty = " with uncommitted changes in src/" if m.get("src_modified") else ""
    console.print(
        f"\n[bold]Clearpost load generator[/bold] -> {m['target']} at {m['url']} "
        f"({m['database_kind']}), {m['cpus']} CPUs, ciphertext {m['ciphertext_bytes']} bytes "
        f"(base64 {m['ciphertext_b64_chars']} chars, request body {m['request_body_bytes']} bytes)"
        f"; commit {m.get('commit')}{dirty}"
    )

    t = Table(title="Requests per second, closed loop (one request in flight per connection)")
    for col in (
        "phase",
        "conc.",
        "requests",
        "errors",
        "seconds",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU",
        "generator CPU",
        "db CPU",
        "other CPU",
    ):
        t.add_column(col, justify="left" if col == "phase" else "right")
    rows = [*res.ceiling, *res.health, *res.send]
    if res.profile_run is not None:
        rows.append(res.profile_run)
    for r in rows:
        t.add_row(
            r.label,
            str(r.concurrency),
            str(r.requests),
            str(r.errors) if r.errors else "",
            f"{r.seconds:.2f}",
            f"[bold]{r.rate:,.0f}[/bold]",
            *_lat(r.latency),
            _pct(r.server_cpu_pct),
            _pct(r.generator_cpu_pct),
            _pct(r.database_cpu_pct),
            _pct(r.other_cpu_pct),
        )
    console.print(t)
    for r in rows:
        if r.first_error:
            console.print(
                f"[red]{r.label} c={r.concurrency}: {r.errors} errors; first: {r.first_error}[/red]"
            )

    t = Table(title="Delivery to syncing users (long-poll GET /v1/sync)")
    for col in (
        "phase",
        "messages",
        "received",
        "msg/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "sync responses",
        "server CPU",
        "generator CPU",
        "db CPU",
        "other CPU",
    ):
        t.add_column(col, justify="left" if col == "phase" else "right")
    d = res.delivery
    if d is not None:
        t.add_row(
            "delivery, one at a time",
            str(d.messages),
            str(d.delivered),
            "-",
            *_lat(d.delivery),
            str(d.sync_batches),
            _pct(d.server_cpu_pct),
            _pct(d.generator_cpu_pct),
            _pct(d.database_cpu_pct),
            _pct(d.other_cpu_pct),
        )
        t.add_row("  (the sends themselves)", "", "", "", *_lat(d.send), "", "", "", "", "")
    f = res.fan_in
    if f is not None:
        t.add_row(
            f"fan-in, {f.senders} senders -> 1",
            str(f.messages),
            str(f.received),
            f"[bold]{f.received_rate:,.0f}[/bold]",
            *_lat(f.delivery),
            str(f.sync_batches),
            _pct(f.server_cpu_pct),
            _pct(f.generator_cpu_pct),
            _pct(f.database_cpu_pct),
            _pct(f.other_cpu_pct),
        )
    console.print(t)
    for label, err in (("delivery", d and d.error), ("fan-in", f and f.error)):
        if err:
            console.print(f"[red]{label}: {err}[/red]")
    busy = res.busy_phases()
    if busy:
        console.print(
            f"[yellow]warning: other processes used over {BUSY_OTHER_PCT:.0f}% of a core during: "
            f"{', '.join(busy)} (load average {m.get('load_before')} before, "
            f"{m.get('load_after')} after). On a 2-core machine that skews the numbers."
            "[/yellow]"
        )

    fp = res.footprint
    t = Table(title="Server footprint")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("resident memory at idle (after setup)", _kib(fp.get("rss_idle_kib")))
    t.add_row("CPU at idle (2 s after setup, % of a core)", _pct(fp.get("cpu_idle_pct")))
    t.add_row("resident memory after load", _kib(fp.get("rss_after_kib")))
    t.add_row("peak resident memory (VmHWM)", _kib(fp.get("rss_peak_kib")))
    if fp.get("db_bytes_per_message") is not None:
        t.add_row(
            f"database bytes per message ({fp['db_measure']})", f"{fp['db_bytes_per_message']:,.0f}"
        )
    if fp.get("db_bytes_per_message_checkpointed") is not None:
        t.add_row(
            "database bytes per message (main file, WAL checkpointed)",
            f"{fp['db_bytes_per_message_checkpointed']:,.0f}",
        )
    t.add_row("messages stored during the measured phases", str(fp.get("messages_stored", "-")))
    console.print(t)

    t = Table(title="Targets")
    for col in ("target", "wanted", "measured", "result"):
        t.add_column(col, justify="left" if col == "target" else "right")
    tg = res.targets()
    rate = tg["send_rate_c64"]
    t.add_row(
        "send throughput at c=64",
        f">= {rate['target']:,.0f} msg/s",
        "-" if rate["measured"] is None else f"{rate['measured']:,.0f} msg/s",
        "[green]met[/green]" if rate["met"] else "[red]MISSED[/red]",
    )
    p99 = tg["delivery_p99_ms"]
    t.add_row(
        "delivery p99",
        f"< {p99['target']:.0f} ms",
        _ms(p99["measured"]) + " ms",
        "[green]met[/green]" if p99["met"] else "[red]MISSED[/red]",
    )
    console.print(t)

    if res.profile is not None:
        _print_profile(res.profile, console)


def _print_profile(prof: Profile, console: Console, n: int = 15) -> None:
    console.print(
        f"\n[bold]Server profile[/bold]: py-spy --gil, {prof.samples} samples of the thread "
        "holding the GIL (Python CPU time)"
    )
    t = Table(title="server CPU by thread over the profiled run (/proc), % of one core")
    t.add_column("thread")
    t.add_column("CPU", justify="right")
    for name, pct in prof.thread_cpu.items():
        t.add_row(name, f"{pct:.0f}%")
    console.print(t)
    rankings = (
        ("self (innermost frame)", "function", prof.top(prof.self_time, n)),
        ("inclusive, Clearpost code", "function", prof.ours(n)),
        (
            "inclusive, libraries (frames on >40% of samples left out)",
            "function",
            prof.below_dispatch(n),
        ),
        ("package of the innermost frame", "package", prof.top(prof.packages, 12)),
    )
    for title, what, rows in rankings:
        t = Table(title=f"top by {title}")
        t.add_column("share", justify="right")
        t.add_column(what)
        for name, share in rows:
            t.add_row(f"{share:.1%}", name)
        console.print(t)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, Profile):
        return obj.as_json()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def write_json(res: Results, path: Path) -> None:
    data = {
        "meta": res.meta,
        "targets": res.targets(),
        "busy_phases": res.busy_phases(),
        "ceiling_noop": _plain(res.ceiling),
        "health": _plain(res.health),
        "send": _plain(res.send),
        "delivery": _plain(res.delivery),
        "fan_in": _plain(res.fan_in),
        "footprint": res.footprint,
        "profile_run": _plain(res.profile_run),
        "profile": res.profile.as_json() if res.profile else None,
    }
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
