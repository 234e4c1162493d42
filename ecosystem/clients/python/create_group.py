"""Creates a WhatsApp group of a session's number and the people named (a group job),
waits for the server's answer, and prints the group from wa.groups: its JID (the
recipient for messages to it) and its members.

    python create_group.py <session> <subject> <phone>... [--timeout SECONDS]
"""

import argparse
import asyncio
import sys
import time

from common import connect


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("session")
    p.add_argument("subject")
    p.add_argument("phones", nargs="+")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()
    deadline = time.monotonic() + args.timeout

    async with await connect() as conn:
        # wa_groups announces the new row; the job's state says when it is all done.
        await conn.execute("LISTEN wa_groups")
        cur = await conn.execute("SELECT wa.create_group(%s, %s, %s)", (args.session, args.subject, args.phones))
        (job,) = await cur.fetchone()
        print(f'queued job {job}: creating group "{args.subject}" through {args.session}')
        while True:
            cur = await conn.execute("SELECT state, result, errors->-1->>'error' FROM wa.jobs WHERE id = %s", (job,))
            state, result, error = await cur.fetchone()
            left = deadline - time.monotonic()
            if state in ("completed", "dead", "cancelled") or left <= 0:
                break
            # Woken by a notification, or a second later at most.
            async for _ in conn.notifies(timeout=min(1.0, left), stop_after=1):
                pass
        if state != "completed":
            print(f"no group yet: job {job} is {state}" + (f": {error}" if error else ""))
            if state != "dead":
                print("the session must be connected for the group to be created")
            return 4 if state == "dead" else 3
        cur = await conn.execute(
            "SELECT jid, subject, participants FROM wa.groups WHERE session_id = %s AND jid = %s",
            (args.session, result["group"]),
        )
        jid, subject, participants = await cur.fetchone()
        print(f'created group {jid} "{subject}"')
        for m in participants:
            admin = f" ({m['admin']})" if m.get("admin") else ""
            print(f"  {m.get('phone') or m['jid']}{admin}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
