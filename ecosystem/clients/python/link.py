"""Link a WhatsApp number: show each QR code (or pairing code) in the terminal as the
worker publishes it, until the session is connected.

The worker writes the code to wa.sessions (qr_code / pair_code, with their expiry) and
announces it on wa_link; the payload has no code in it, so the code is read from the
table. An app's web UI does the same and draws the QR in the page.

    python link.py <session> [--pair-phone PHONE] [--timeout SECONDS]
"""

import argparse
import asyncio
import datetime
import json
import sys

import qrcode

from common import connect

TERMINAL = ("conflict", "logged_out", "failed", "banned")


def print_qr(code: str) -> None:
    qr = qrcode.QRCode(border=1)
    qr.add_data(code)
    qr.make(fit=True)
    # Half-height block characters: two rows of modules per line of text.
    qr.print_ascii(out=sys.stdout, invert=True)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("session")
    p.add_argument("--pair-phone", help="link by pairing code on this phone instead of QR")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")
    args = p.parse_args()
    s = args.session

    async with await connect() as listener, await connect() as reader:
        # LISTEN before reading the current state: a code published in between is then
        # both read and notified, never missed.
        await listener.execute("LISTEN wa_link")
        await listener.execute("LISTEN wa_session_status")

        cur = await reader.execute("SELECT status FROM wa.sessions WHERE id = %s", (s,))
        row = await cur.fetchone()
        if row is None:
            await reader.execute("SELECT wa.add_session(%s, pair_phone => %s)", (s, args.pair_phone))
            what = "pairing code" if args.pair_phone else "QR code"
            print(f"added session {s}: a worker will claim it and publish a {what}")
        else:
            print(f"session {s} is {row[0]}")
            if row[0] == "connected":
                print(f"linked: {s} is already connected")
                return 0

        last_shown = None

        async def show_code() -> None:
            nonlocal last_shown
            cur = await reader.execute(
                """SELECT qr_code, qr_expires_at, qr_count, pair_code, pair_code_expires_at
                     FROM wa.sessions WHERE id = %s""",
                (s,),
            )
            row = await cur.fetchone()
            if row is None:
                return
            qr, qr_expires, qr_count, pair, pair_expires = row
            now = datetime.datetime.now(datetime.timezone.utc)
            if qr and qr != last_shown and not (qr_expires and qr_expires < now):
                last_shown = qr
                print(f"QR code #{qr_count} for {s}, expires at {qr_expires.isoformat() if qr_expires else 'unknown'}:")
                print("scan it in WhatsApp > Linked devices > Link a device")
                print_qr(qr)
            elif pair and pair != last_shown:
                last_shown = pair
                print(f"pairing code for {s}: {pair} (expires at {pair_expires.isoformat() if pair_expires else 'unknown'})")
                print("enter it in WhatsApp > Linked devices > Link with phone number")

        await show_code()
        print(f"waiting for codes on wa_link{f' (up to {args.timeout:g} s)' if args.timeout else ''}")
        result = "timeout"
        async for n in listener.notifies(timeout=args.timeout):
            event = json.loads(n.payload)
            if event.get("session") != s:
                continue
            if n.channel == "wa_link":
                await show_code()
            elif n.channel == "wa_session_status":
                reason = f" ({event['reason']})" if event.get("reason") else ""
                print(f"status {s}: {event.get('previous') or '-'} -> {event['status']}{reason}")
                if event["status"] == "connected" or event["status"] in TERMINAL:
                    # A terminal status: waiting longer would not link the number.
                    result = event["status"]
                    break

    if result == "connected":
        print(f"linked: {s} is connected")
        return 0
    print(f"not linked: {result}")
    return 3


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
