"""Be told about inbound messages and session status changes instead of polling.

NOTIFY payloads carry ids only (never message text): on wa_inbox the message is read
from wa.inbox by id, on a second connection, so the listening one stays idle and out
of any transaction.

    python listen.py [--session S] [--max-events N] [--timeout SECONDS]
"""

import argparse
import asyncio
import json
import sys

from common import connect


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--session", help="only this session")
    p.add_argument("--max-events", type=int, help="exit after printing this many events")
    p.add_argument("--timeout", type=float, help="exit after this many seconds")
    args = p.parse_args()

    printed = 0
    why = "timeout"
    async with await connect() as listener, await connect() as reader:
        await listener.execute("LISTEN wa_inbox")
        await listener.execute("LISTEN wa_session_status")
        only = f" for session {args.session}" if args.session else ""
        print(f"listening on wa_inbox, wa_session_status{only}")

        async for n in listener.notifies(timeout=args.timeout):
            event = json.loads(n.payload)
            if args.session and event.get("session") != args.session:
                continue
            if n.channel == "wa_inbox":
                cur = await reader.execute(
                    "SELECT session_id, chat, sender, message_id, kind, text FROM wa.inbox WHERE id = %s",
                    (event["id"],),
                )
                row = await cur.fetchone()
                if row is None:  # removed meanwhile (session removed)
                    continue
                session, chat, sender, message_id, kind, text = row
                print(f"inbound {session} {chat} from {sender} [{kind}] {message_id}: {text or ''}")
            elif n.channel == "wa_session_status":
                reason = f" ({event['reason']})" if event.get("reason") else ""
                print(f"status {event['session']}: {event.get('previous') or '-'} -> {event['status']}{reason}")
            printed += 1
            if args.max_events is not None and printed >= args.max_events:
                why = "max-events"
                break

    print(f"stopped after {printed} event(s) ({why})")
    # Reaching the timeout while waiting for a number of events means they never came.
    return 3 if why == "timeout" and args.max_events is not None else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
