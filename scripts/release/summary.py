"""What a person reads after a run: the GitHub job summary, and the service's own log when a deploy fails.

Every deploy, rollback and refusal appends one section to `$GITHUB_STEP_SUMMARY` (when GitHub Actions sets it):
the command, the result, how long it took, the environment's URL and digest, and every line the engine printed
(the plan's gates included).  Nothing is written outside GitHub Actions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOG_LINES = 30
LOG_WINDOW_SECONDS = 30 * 60


@dataclass
class Summary:
    command: str
    environment: str
    started: float = field(default_factory=time.monotonic)
    lines: list[str] = field(default_factory=list)
    url: str = ""
    digest: str = ""

    def tee(self, out: Callable[[str], None]) -> Callable[[str], None]:
        def both(line: str) -> None:
            self.lines.append(line)
            out(line)

        return both

    def markdown(self, code: int) -> str:
        verdict = "succeeded" if code == 0 else "FAILED or REFUSED"
        elapsed = time.monotonic() - self.started
        head = [
            f"### `{self.command}` {self.environment}: {verdict}",
            "",
            "| | |",
            "|---|---|",
            f"| result | exit {code} ({verdict}) |",
            f"| took | {elapsed:.0f} s |",
            f"| URL | {self.url or 'unknown'} |",
            f"| digest | `{self.digest or 'none'}` |",
            "",
            "```",
            *(line.replace("```", "'''") for line in self.lines),
            "```",
            "",
        ]
        return "\n".join(head)

    def write(self, code: int, path: str | None = None) -> None:
        path = path or os.environ.get("GITHUB_STEP_SUMMARY")
        if path:
            with Path(path).open("a", encoding="utf-8") as fh:
                fh.write(self.markdown(code))


def log_group(service_arn: str) -> str:
    """App Runner's application log group: /aws/apprunner/<service name>/<service id>/application."""
    name, service_id = service_arn.rsplit(":service/", 1)[-1].split("/", 1)
    return f"/aws/apprunner/{name}/{service_id}/application"


def tail(
    logs, service_arn: str, *, group: str | None = None, lines: int = LOG_LINES, now: float | None = None
) -> list[str]:
    """The last `lines` application log lines of the last half hour, oldest first; [] if there is no log
    client.  A failure to read says so in one line instead of hiding the deploy's own error."""
    if logs is None:
        return []
    group = group or log_group(service_arn)
    start = int(((now if now is not None else time.time()) - LOG_WINDOW_SECONDS) * 1000)
    events: list[dict] = []
    kwargs = {"logGroupName": group, "startTime": start, "limit": 1000}
    try:
        for _ in range(20):  # bounded: at most 20 pages
            page = logs.filter_log_events(**kwargs)
            events.extend(page.get("events", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except Exception as exc:  # noqa: BLE001 - the log is a help, not a gate
        return [f"(cannot read {group}: {type(exc).__name__})"]
    events.sort(key=lambda e: (e.get("timestamp", 0), e.get("eventId", "")))
    return [f"log | {e.get('message', '').rstrip()}" for e in events[-lines:]]
