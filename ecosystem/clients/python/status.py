"""Read a message's delivery status: queued -> sent (server ack) -> delivered -> read,
or failed. Prints the row from wa.outbound, and with --wait-for follows wa_outbound
until the message reaches that status.

    python status.py <message_id> [--wait-for sent|delivered|read] [--timeout SECONDS]
"""

import argparse
import asyncio
import json
import sys

from common import connect

ORDER = ["queued", "sent", "delivered", "read"]


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("message_id")
    p.add_argument("--wait-for", choices=ORDER[1:])
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    mid = args.message_id

    async with await connect() as listener, await connect() as reader:

        async def read():
            cur = await reader.execute(
                """SELECT job_id, session, chat, status, job_state, attempts, last_error,
                          sent_at, delivered_at, read_at
                     FROM wa.outbound WHERE message_id = %s""",
                (mid,),
            )
            return await cur.fetchone()

        def show(r) -> None:
            job_id, session, chat, status, job_state, attempts, last_error = r[:7]
            times = " ".join(
                f"{k}={v.isoformat()}" for k, v in zip(("sent_at", "delivered_at", "read_at"), r[7:]) if v
            )
            err = f" last_error={last_error}" if last_error else ""
            print(f"message {mid} (job {job_id}, {session} -> {chat}): {status} [job {job_state}, attempts {attempts}] {times}{err}")

        def reached(r) -> bool:
            return r[3] == "failed" or ORDER.index(r[3]) >= ORDER.index(args.wait_for)

        if args.wait_for:
            await listener.execute("LISTEN wa_outbound")  # before reading: no change missed
        r = await read()
        if r is None:
            print(f"no message with id {mid}", file=sys.stderr)
            return 1
        show(r)
        if args.wait_for and not reached(r):
            done = False
            async for n in listener.notifies(timeout=args.timeout):
                if mid not in (json.loads(n.payload).get("message_ids") or []):
                    continue
                r = await read()
                show(r)
                if reached(r):
                    done = True
                    break
            if not done:
                print(f"timed out waiting for {args.wait_for}")
                return 3
    return 4 if r[3] == "failed" else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
