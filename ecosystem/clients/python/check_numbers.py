"""Which phone numbers are on WhatsApp: asks through a connected session (a
check_numbers job), waits for its answers on wa_contacts, and prints them from
wa.contacts, with the LID WhatsApp uses for each number.

    python check_numbers.py <session> <phone>... [--timeout SECONDS]
"""

import argparse
import asyncio
import json
import sys

from common import connect


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("session")
    p.add_argument("phones", nargs="+")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args()

    async with await connect() as conn:
        # Listening before enqueueing, so the answer cannot come before we wait for it.
        await conn.execute("LISTEN wa_contacts")
        cur = await conn.execute("SELECT wa.check_numbers(%s, %s)", (args.session, args.phones))
        (job,) = await cur.fetchone()
        print(f"queued job {job}: checking {len(args.phones)} number(s) through {args.session}")
        answered = False
        async for n in conn.notifies(timeout=args.timeout):
            if json.loads(n.payload).get("job") == job:
                answered = True
                break
        if not answered:
            cur = await conn.execute("SELECT state, errors->-1->>'error' FROM wa.jobs WHERE id = %s", (job,))
            state, error = await cur.fetchone()
            print(f"no answer yet: job {job} is {state}" + (f": {error}" if error else ""))
            print("the session must be connected for the check to run")
            return 4 if state == "dead" else 3
        cur = await conn.execute(
            """SELECT c.phone, c.on_whatsapp, c.jid, c.lid
                 FROM wa.jobs j CROSS JOIN LATERAL jsonb_array_elements_text(j.payload->'phones') p
                 JOIN wa.contacts c ON c.session_id = j.session_id AND c.phone = p
                WHERE j.id = %s ORDER BY c.phone""",
            (job,),
        )
        for phone, on, jid, lid in await cur.fetchall():
            if on:
                print(f"{phone}: on WhatsApp as {jid}" + (f" (LID {lid})" if lid else ""))
            else:
                print(f"{phone}: not on WhatsApp")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
