"""Enqueue a WhatsApp message inside the app's own transaction.

The booking row and the message are written by one transaction: if the app rolls back,
the message is never queued and no worker ever sees it.

    python send.py <session> <to> <text> [--at=<latitude>,<longitude> [--place NAME]] [--voice FILE.ogg] [--rollback]

With --at, the place is sent too, as a location pin after the text; with --voice, a
voice note (an Ogg Opus file, as WhatsApp records them). All in the same transaction.
"""

import argparse
import asyncio
import sys

import psycopg

from common import connect


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("session")
    p.add_argument("to")
    p.add_argument("text")
    p.add_argument("--at", help="also send a location: latitude,longitude (write --at=-23.56,-46.65)")
    p.add_argument("--place", help="the location's name")
    p.add_argument("--voice", help="also send a voice note: an Ogg Opus file")
    p.add_argument("--rollback", action="store_true", help="roll the app transaction back")
    args = p.parse_args()

    async with await connect() as conn:
        # The app's own table; created here only so that the example runs on its own.
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS app_bookings (
                   id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   customer text NOT NULL,
                   created_at timestamptz NOT NULL DEFAULT now())"""
        )
        try:
            async with conn.transaction() as tx:
                cur = await conn.execute(
                    "INSERT INTO app_bookings (customer) VALUES (%s) RETURNING id", (args.to,)
                )
                (booking_id,) = await cur.fetchone()
                # The idempotency key ties the message to the booking: running this twice
                # for one booking returns the first job instead of a second message.
                cur = await conn.execute(
                    "SELECT job_id, message_id FROM wa.send_text(%s, %s, %s, idempotency_key => %s)",
                    (args.session, args.to, args.text, f"booking-{booking_id}"),
                )
                job_id, message_id = await cur.fetchone()
                print(f"in transaction: booking {booking_id}, queued job {job_id} message {message_id}")
                if args.at:
                    latitude, longitude = (float(x) for x in args.at.split(","))
                    cur = await conn.execute(
                        "SELECT job_id, message_id FROM wa.send_location(%s, %s, %s, %s, name => %s,"
                        " idempotency_key => %s)",
                        (args.session, args.to, latitude, longitude, args.place, f"booking-{booking_id}-location"),
                    )
                    pin_job, pin_message = await cur.fetchone()
                    print(f"in transaction: queued location job {pin_job} message {pin_message}")
                if args.voice:
                    # The bytes go in as bytea; the worker reads the note's length from the file.
                    with open(args.voice, "rb") as f:
                        note = f.read()
                    cur = await conn.execute(
                        "SELECT job_id, message_id FROM wa.send_media(%s, %s, 'voice', data => %s, idempotency_key => %s)",
                        (args.session, args.to, note, f"booking-{booking_id}-voice"),
                    )
                    note_job, note_message = await cur.fetchone()
                    print(f"in transaction: queued voice job {note_job} message {note_message}")
                if args.rollback:
                    raise psycopg.Rollback(tx)
            if args.rollback:
                print("rolled back: the booking and the message are gone, nothing will be sent")
            else:
                print(f"committed: job {job_id} message {message_id} is queued for {args.session}")
        except psycopg.Error as e:
            # SQL API errors carry a WAxxx SQLSTATE and name the argument at fault.
            print(f"error {e.sqlstate or ''}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
