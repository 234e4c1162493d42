"""Send a poll, then count the votes as they come: each vote arrives on wa_inbox (kind
poll_vote), opened by the worker; wa.poll_results has the tally.

    python poll.py <session> <to> <question> <option> <option>... [--pick N] [--votes N] [--timeout SECONDS]

--pick: how many options a voter may choose (default 1; 0 for any number).
--votes: stop after this many votes (default: just send, do not wait).
"""

import argparse
import asyncio
import json
import sys

from common import connect


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("session")
    p.add_argument("to")
    p.add_argument("question")
    p.add_argument("options", nargs="+")
    p.add_argument("--pick", type=int, default=1)
    p.add_argument("--votes", type=int, default=0)
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    if len(args.options) < 2:
        p.error("a poll needs at least two options")

    async with await connect() as listener, await connect() as reader:
        if args.votes:
            await listener.execute("LISTEN wa_inbox")  # before sending: no vote missed
        cur = await reader.execute(
            "SELECT job_id, message_id FROM wa.send_poll(%s, %s, %s, %s, %s)",
            (args.session, args.to, args.question, args.options, args.pick),
        )
        job_id, poll_id = await cur.fetchone()
        print(f"queued poll job {job_id} message {poll_id}")
        seen = 0
        if args.votes:
            async for n in listener.notifies(timeout=args.timeout):
                note = json.loads(n.payload)
                if note.get("kind") != "poll_vote" or note.get("session") != args.session:
                    continue
                cur = await reader.execute("SELECT data FROM wa.inbox WHERE id = %s AND quoted_id = %s", (note["id"], poll_id))
                row = await cur.fetchone()
                if row is None:
                    continue  # a vote on another poll
                seen += 1
                print(f"vote {seen}: {json.dumps(row[0], separators=(',', ':'))}")
                cur = await reader.execute(
                    "SELECT option, votes, voters FROM wa.poll_results WHERE poll_id = %s ORDER BY position", (poll_id,)
                )
                for option, votes, voters in await cur.fetchall():
                    print(f"  {option}: {votes}" + (f" ({', '.join(voters)})" if votes else ""))
                if seen >= args.votes:
                    return 0
            print(f"timed out after {seen} vote(s)")
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
