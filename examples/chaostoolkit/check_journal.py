"""Fails unless a journal of experiment.json says what a good run says: completed, the steady
state met before and after, every activity succeeded, the toxics acted (a slower round trip, a
refused connection while disabled), Prometheus saw the bytes, and the rollbacks ran.

Usage: python3 check_journal.py journal.json
"""

import json
import sys

LATENCY_MS = 50
JITTER_MS = 5
VALUE_BYTES = 10000
RATE_KB_S = 100


def check(journal):
    problems = []

    def expect(ok, what):
        if not ok:
            problems.append(what)

    expect(journal.get("status") == "completed", f"status is {journal.get('status')!r}")
    expect(journal.get("deviated") is False, "the steady state deviated")
    for when in ("before", "after"):
        state = (journal.get("steady_states") or {}).get(when) or {}
        expect(state.get("steady_state_met") is True, f"steady state not met {when} the method")

    runs = {r["activity"]["name"]: r for r in journal.get("run", [])}
    for name, r in runs.items():
        expect(r["status"] == "succeeded", f"{name!r}: {r['status']} {r.get('exception')}")

    def output(prefix):
        for name, r in runs.items():
            if name.startswith(prefix):
                return r.get("output")
        problems.append(f"no activity named {prefix!r}...")
        return None

    toxics = output("the toxics of the proxy") or []
    expect(
        sorted(t.get("name") for t in toxics) == ["bandwidth_downstream", "latency_downstream"],
        f"toxics listed: {toxics}",
    )
    attrs = {t.get("type"): t.get("attributes") for t in toxics}
    expect(attrs.get("latency") == {"latency": LATENCY_MS, "jitter": JITTER_MS}, f"{attrs}")
    expect(attrs.get("bandwidth") == {"rate": RATE_KB_S}, f"{attrs}")

    # Three replies each LATENCY - JITTER late at least, and the 10 kB one at RATE kB/s, less
    # the 10 ms an idle bandwidth toxic may catch up: a lower bound only (a loaded machine is
    # slower, never faster).
    floor = 3 * (LATENCY_MS - JITTER_MS) + VALUE_BYTES / RATE_KB_S - 10
    for prefix in ("round trip under the toxics", "round trip after the outage"):
        ms = output(prefix)
        expect(isinstance(ms, (int, float)) and ms >= floor, f"{prefix}: {ms} ms < {floor}")

    expect(output("the proxy is disabled") is False, "the proxy did not read as disabled")
    expect(output("redis cannot be reached") is True, "the disabled proxy still accepted")

    prom = output("bytes the proxy sent back") or {}
    try:
        sent = float(prom["data"]["result"][0]["value"][1])
    except (KeyError, IndexError, TypeError, ValueError):
        sent = None
    # Three round trips of VALUE_BYTES each had gone through before the query.
    expect(sent is not None and sent >= 3 * VALUE_BYTES, f"Prometheus answered {prom}")

    rollbacks = journal.get("rollbacks", [])
    expect(len(rollbacks) == 3, f"{len(rollbacks)} rollbacks ran, not 3")
    for r in rollbacks:
        expect(r["status"] == "succeeded", f"rollback {r['activity']['name']!r}: {r['status']}")
        if r["activity"]["provider"]["func"] == "delete_toxic":
            expect(r.get("output") is True, f"rollback {r['activity']['name']!r} was refused")
    return problems


def main():
    try:
        with open(sys.argv[1]) as f:
            journal = json.load(f)
    except (OSError, ValueError) as e:
        print(f"journal: cannot read {sys.argv[1]}: {e}", file=sys.stderr)
        return 1
    problems = check(journal)
    for p in problems:
        print(f"journal: {p}", file=sys.stderr)
    if problems:
        return 1
    print("journal: completed, steady state met before and after, toxics acted, rollbacks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
