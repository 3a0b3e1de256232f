"""`nox -s status` as a person reads it: plain text in a terminal, markdown in a GitHub job summary.  Both are
drawn from the dict status.collect() returns (the `--json` form), row by row, so they always say the same."""

from __future__ import annotations

from typing import Any

VERDICTS = {
    "ready": "READY: every production gate passes",
    "refused": "REFUSED",
    "up-to-date": "nothing to promote: production already runs this tree",
    "unknown": "UNKNOWN (see `could not read`)",
}


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "unknown"


def environment_rows(e: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows for one environment."""
    if e["deployed"] is None:
        return [("service", f"{e['service']}: not read")]
    if not e["deployed"]:
        return [("service", f"{e['service']}: not deployed (no such App Runner service)")]
    ready = e["ready"]
    answer = "not probed" if ready is None else ("ready" if ready["ok"] else "NOT READY") + f" ({ready['detail']})"
    last = e["last_deploy"]
    last_text = f"{last['type']} {last['result']} ({last['ended_at'] or last['started_at']})" if last else "none"
    rows = [
        ("service", f"{e['service']}: {e['status']}, {answer}"),
        ("runs", e["digest"] or e["image"] or "no image yet"),
        ("source", f"commit {_short(e['commit'])}, tree {_short(e['tree'])}"),
        ("deployed", f"{e['deployed_at'] or 'time unknown'} by {e['deployed_by'] or 'unknown run'}"),
        ("last deploy", last_text),
        ("url", e["url"] or "none"),
    ]
    if "record" in e:
        r = e["record"]
        valid = {True: "valid", False: "NOT VALID", None: "not read"}[r["valid"]]
        rows.append(("record", valid + (f": {r['problem']}" if r["problem"] else f" (run {r['run']})")))
    if "history" in e:
        h = e["history"]
        if h["entries"] is None:
            entry = "not read"
        elif h["entry"] or not e["digest"]:
            entry = f"entry {h['entry']} of {h['entries']}" if h["entry"] else f"{h['entries']} entries"
        else:
            entry = "NOT IN THE PRODUCTION HISTORY (nothing to roll back to)"
        rows.append(("history", entry))
    return rows


def _commit_lines(s: dict[str, Any]) -> list[str]:
    n = s["not_in_production"]
    if n["count"] is None:
        return [f"commits on develop not in production: unknown{' (' + n['base_is'] + ')' if n['base_is'] else ''}"]
    against = "production" if n["base_is"] == "production" else f"{n['base_is'] or 'nothing'} (git alone)"
    lines = [f"{n['count']} commit(s) on develop that {against} does not run:"]
    lines += [f"  {c['sha']} {c['subject']} ({c['author']})" for c in n["commits"]]
    if n["truncated"]:
        lines.append(f"  ... and {n['count'] - len(n['commits'])} more")
    return lines


def _promotion_head(s: dict[str, Any]) -> str:
    p = s.get("promotion")
    if p is None:
        return "promotion: no production environment"
    what = p["candidate"] or p.get("problem") or "no candidate"
    return f"promotion ({what}, tree {_short(p['tree'])}): {VERDICTS[p['verdict']]}"


def _tail(s: dict[str, Any]) -> list[str]:
    return [f"could not read: {'; '.join(s['unread'])}"] if s["unread"] else []


def text(s: dict[str, Any]) -> str:
    g = s["git"]
    refs = ", ".join(f"{v['ref']} {_short(v['sha'])}" for b, v in g.items() if b != "head" and v)
    lines = [f"MV-OS release status, {s['generated_at']} (git as last fetched: {refs or 'no release branches'})"]
    for name, e in s["environments"].items():
        lines.append("")
        lines.append(name)
        lines += [f"  {label:<12}{value}" for label, value in environment_rows(e)]
    lines.append("")
    lines += _commit_lines(s)
    lines.append("")
    lines.append(_promotion_head(s))
    lines += [f"  {gate['line']}" for gate in s.get("promotion", {}).get("gates", [])]
    lines += _tail(s)
    return "\n".join(lines)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown(s: dict[str, Any]) -> str:
    envs = list(s["environments"])
    rows: dict[str, dict[str, str]] = {}
    for name in envs:
        for label, value in environment_rows(s["environments"][name]):
            rows.setdefault(label, {})[name] = value
    lines = [
        f"### Release status ({s['generated_at']})",
        "",
        "| | " + " | ".join(envs) + " |",
        "|---|" + "---|" * len(envs),
        *(f"| {label} | " + " | ".join(_cell(r.get(n, "")) for n in envs) + " |" for label, r in rows.items()),
        "",
    ]
    commits = _commit_lines(s)
    lines += [f"**{_cell(commits[0])}**", ""]
    lines += [f"- {_cell(c.strip())}" for c in commits[1:]]
    lines += ["", f"**{_cell(_promotion_head(s))}**", ""]
    gates = [gate["line"].replace("```", "'''") for gate in s.get("promotion", {}).get("gates", [])]
    if gates:
        lines += ["```", *gates, "```", ""]
    lines += [f"_{_cell(t)}_" for t in _tail(s)]
    return "\n".join(lines) + "\n"
