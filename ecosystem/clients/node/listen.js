// Be told about inbound messages and session status changes instead of polling.
//
// NOTIFY payloads carry ids only (never message text): on wa_inbox the example reads
// the message from wa.inbox by id. Notifications are only delivered to a connection
// that is not inside a transaction, so this connection does nothing else.
//
//   node listen.js [--session S] [--max-events N] [--timeout SECONDS]
'use strict';

const { connect, parseArgs } = require('./lib');

const usage = 'usage: node listen.js [--session S] [--max-events N] [--timeout SECONDS]';

async function main() {
  const { options } = parseArgs(process.argv.slice(2), usage);
  const only = options.session || null;
  const maxEvents = options['max-events'] ? Number(options['max-events']) : Infinity;
  const timeoutMs = options.timeout ? Number(options.timeout) * 1000 : 0;
  const client = await connect();
  let closed = false;
  let printed = 0;

  const done = new Promise((resolve) => {
    // Handle notifications one after the other, so lines come out in arrival order
    // even though reading a message is a query of its own.
    let chain = Promise.resolve();
    client.on('notification', (msg) => {
      chain = chain.then(async () => {
        if (closed) return;
        if (printed >= maxEvents) return;
        const n = JSON.parse(msg.payload);
        if (only && n.session !== only) return;
        if (msg.channel === 'wa_inbox') {
          const { rows } = await client.query(
            'SELECT session_id, chat, sender, message_id, kind, text FROM wa.inbox WHERE id = $1',
            [n.id],
          );
          if (rows.length === 0) return; // removed meanwhile (session removed)
          const m = rows[0];
          console.log(`inbound ${m.session_id} ${m.chat} from ${m.sender} [${m.kind}] ${m.message_id}: ${m.text ?? ''}`);
        } else if (msg.channel === 'wa_session_status') {
          const reason = n.reason ? ` (${n.reason})` : '';
          console.log(`status ${n.session}: ${n.previous ?? '-'} -> ${n.status}${reason}`);
        }
        printed += 1;
        if (printed >= maxEvents) resolve('max-events');
      }).catch((err) => console.error(`error handling ${msg.channel}: ${err.message}`));
    });
    // unref: a pending timer must not keep the process alive once the work is done.
    if (timeoutMs) setTimeout(() => resolve('timeout'), timeoutMs).unref();
  });

  await client.query('LISTEN wa_inbox');
  await client.query('LISTEN wa_session_status');
  console.log(`listening on wa_inbox, wa_session_status${only ? ` for session ${only}` : ''}`);

  const why = await done;
  console.log(`stopped after ${printed} event(s) (${why})`);
  closed = true; // notifications still queued are not handled on a closed client
  await client.end();
  // Reaching the timeout while waiting for a number of events means they never came.
  if (why === 'timeout' && Number.isFinite(maxEvents)) process.exitCode = 3;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
