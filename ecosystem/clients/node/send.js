// Enqueue a WhatsApp message inside the app's own transaction.
//
// The booking row and the message are written by one transaction: if the app rolls back
// (a validation fails, the payment is refused...), the message is never queued, so no
// worker ever sees it. No outbox table, no two-phase dance: the queue is a table.
//
//   node send.js <session> <to> <text> [--at=<latitude>,<longitude> [--place <name>]] [--voice <file.ogg>] [--rollback]
//
// With --at, the place is sent too, as a location pin after the text; with --voice, a
// voice note (an Ogg Opus file, as WhatsApp records them). All in the same transaction.
'use strict';

const fs = require('fs');

const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node send.js <session> <to> <text> [--at=<latitude>,<longitude> [--place <name>]] [--voice <file.ogg>] [--rollback]';

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length !== 3) fail(usage);
  const [session, to, text] = positional;
  const client = await connect();
  try {
    // The app's own table; created here only so that the example runs on its own.
    await client.query(`CREATE TABLE IF NOT EXISTS app_bookings (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        customer text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())`);

    await client.query('BEGIN');
    const booking = await client.query('INSERT INTO app_bookings (customer) VALUES ($1) RETURNING id', [to]);
    const bookingId = booking.rows[0].id;
    // The idempotency key ties the message to the booking: running this twice for the
    // same booking returns the first job instead of sending a second message.
    const queued = await client.query(
      'SELECT job_id, message_id FROM wa.send_text($1, $2, $3, idempotency_key => $4)',
      [session, to, text, `booking-${bookingId}`],
    );
    const { job_id: jobId, message_id: messageId } = queued.rows[0];
    console.log(`in transaction: booking ${bookingId}, queued job ${jobId} message ${messageId}`);
    if (options.at) {
      const [latitude, longitude] = String(options.at).split(',').map(Number);
      const pin = await client.query(
        'SELECT job_id, message_id FROM wa.send_location($1, $2, $3, $4, name => $5, idempotency_key => $6)',
        [session, to, latitude, longitude, options.place || null, `booking-${bookingId}-location`],
      );
      console.log(`in transaction: queued location job ${pin.rows[0].job_id} message ${pin.rows[0].message_id}`);
    }
    if (options.voice) {
      // The bytes go in as bytea; the worker reads the note's length from the file.
      const note = await client.query(
        "SELECT job_id, message_id FROM wa.send_media($1, $2, 'voice', data => $3, idempotency_key => $4)",
        [session, to, fs.readFileSync(String(options.voice)), `booking-${bookingId}-voice`],
      );
      console.log(`in transaction: queued voice job ${note.rows[0].job_id} message ${note.rows[0].message_id}`);
    }

    if (options.rollback) {
      await client.query('ROLLBACK');
      console.log('rolled back: the booking and the message are gone, nothing will be sent');
    } else {
      await client.query('COMMIT');
      console.log(`committed: job ${jobId} message ${messageId} is queued for ${session}`);
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    // SQL API errors carry a WAxxx SQLSTATE and name the argument at fault.
    console.error(`error ${err.code || ''}: ${err.message}`);
    process.exitCode = 1;
  } finally {
    await client.end();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
