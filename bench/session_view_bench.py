"""What a live check costs in reading its session's chain, by the age of the session.

    .venv/bin/python bench/session_view_bench.py            # SQLite in a temporary folder

Every live check reads the state of its session (is it active, paused, ended?) and
its credited time (shown on the learner's page): twice in the service's main process
around the check, once more to send the page its state, and once in the worker that
records it. The baseline, as the service did before, reads and decodes the whole
chain each time, so a check in the eighth hour of a session (some 500 checks in) costs
far more than one in the first minutes. `SessionViews` folds each session once and
then reads only the events appended since it last looked.

For chains of N events (a session with N/2 presence checks), the script appends one
more check and times the four reads of that check both ways (CPU time of this process,
median of many checks), on a real SQLite database. Prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import DEV_TEMPLATE_KEY, DatabaseSettings, EvidenceSettings  # noqa: E402
from storage import open_storage  # noqa: E402
from storage.migrate import upgrade  # noqa: E402
from supervisor.ledger import codec
from supervisor.ledger import events as ev  # noqa: E402
from supervisor.online.sessions import SessionViews, fold  # noqa: E402
from supervisor.rules.crediting import credit  # noqa: E402

GAP = timedelta(minutes=15)
T0 = datetime(2026, 10, 8, 1, 0, tzinfo=UTC)


def check(n: int) -> ev.CheckRecorded:
    at = T0 + timedelta(seconds=60 * n)
    return ev.CheckRecorded(
        uuid.uuid4().hex, "presence", "scheduled", "present", True, at, None, None, (), 1, 3, None
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="10,100,500,1000,3000")
    parser.add_argument("--checks", type=int, default=40, help="timed checks per length")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="view_bench_"))
    url = f"sqlite:///{folder / 'bench.db'}"
    upgrade(url)
    storage = open_storage(
        DatabaseSettings(url=url), EvidenceSettings(directory=folder / "ev"), DEV_TEMPLATE_KEY
    )
    rows = []
    try:
        for length in (int(x) for x in args.lengths.split(",")):
            chain = ev.session_chain(f"bench-{length}")
            start = ev.SessionStarted(f"bench-{length}", 1, 1, 1, "webrtc", T0)
            events = [codec.encode(start)] + [codec.encode(check(n)) for n in range(length - 1)]
            for i in range(0, len(events), 500):
                storage.ledger.append(chain, events[i : i + 500])
            views = SessionViews(storage.ledger.read_chain, GAP)
            views.refresh(chain)  # the view exists from the session's first check
            old, new = [], []
            for n in range(args.checks):
                storage.ledger.append(chain, [codec.encode(check(length + n))])
                t = time.process_time()
                for _ in range(4):  # before, after, the page's state, the worker
                    decoded = [e for _, e in codec.decode_all(storage.ledger.read_chain(chain))]
                    fold(decoded)
                credit(decoded, GAP)
                old.append(time.process_time() - t)
                t = time.process_time()
                for _ in range(4):
                    view = views.refresh(chain)
                    view.snapshot()
                view.clock.credited_seconds  # noqa: B018 - what the page is sent
                new.append(time.process_time() - t)
            o, w = statistics.median(old) * 1000, statistics.median(new) * 1000
            rows.append((length, o, w))
            print(f"{length} events: whole chain {o:.2f} ms, incremental {w:.2f} ms", flush=True)
    finally:
        storage.close()
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print("| events in the session's chain | baseline: whole chain read 4x (ms CPU per check) "
          "| incremental views (ms CPU per check) | ratio |")  # fmt: skip
    print("|---|---|---|---|")
    for length, o, w in rows:
        print(f"| {length:,} | {o:.2f} | {w:.2f} | {o / w:.0f}x |")


if __name__ == "__main__":
    main()
