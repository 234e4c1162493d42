// Link a WhatsApp number: show each QR code (or pairing code) in the terminal as the
// worker publishes it, until the session is connected.
//
// The worker writes the code to wa.sessions (qr_code / pair_code, with their expiry) and
// announces it on wa_link; the payload has no code in it, so the code is read from the
// table. An app's web UI does the same and draws the QR in the page.
//
//   node link.js <session> [--pair-phone PHONE] [--timeout SECONDS]
'use strict';

const qrcode = require('qrcode-terminal');
const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node link.js <session> [--pair-phone PHONE] [--timeout SECONDS]';

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length !== 1) fail(usage);
  const [session] = positional;
  const timeoutMs = options.timeout ? Number(options.timeout) * 1000 : 0;
  const client = await connect();
  let closed = false;

  // LISTEN before reading the current state: a code published in between is then
  // both read and notified, never missed.
  await client.query('LISTEN wa_link');
  await client.query('LISTEN wa_session_status');

  const existing = await client.query('SELECT status FROM wa.sessions WHERE id = $1', [session]);
  if (existing.rows.length === 0) {
    await client.query('SELECT wa.add_session($1, pair_phone => $2)', [session, options['pair-phone'] || null]);
    console.log(`added session ${session}: a worker will claim it and publish a ${options['pair-phone'] ? 'pairing code' : 'QR code'}`);
  } else {
    console.log(`session ${session} is ${existing.rows[0].status}`);
    if (existing.rows[0].status === 'connected') {
      console.log(`linked: ${session} is already connected`);
      await client.end();
      return;
    }
  }

  let lastShown = null;
  const showCode = async () => {
    const { rows } = await client.query(
      `SELECT qr_code, qr_expires_at, qr_count, pair_code, pair_code_expires_at
         FROM wa.sessions WHERE id = $1`,
      [session],
    );
    const s = rows[0];
    if (!s) return;
    if (s.qr_code && s.qr_code !== lastShown && !(s.qr_expires_at && s.qr_expires_at < new Date())) {
      lastShown = s.qr_code;
      console.log(`QR code #${s.qr_count} for ${session}, expires at ${s.qr_expires_at?.toISOString() ?? 'unknown'}:`);
      console.log('scan it in WhatsApp > Linked devices > Link a device');
      qrcode.generate(s.qr_code, { small: true }, (art) => console.log(art));
    } else if (s.pair_code && s.pair_code !== lastShown) {
      lastShown = s.pair_code;
      console.log(`pairing code for ${session}: ${s.pair_code} (expires at ${s.pair_code_expires_at?.toISOString() ?? 'unknown'})`);
      console.log('enter it in WhatsApp > Linked devices > Link with phone number');
    }
  };

  const outcome = new Promise((resolve) => {
    let chain = Promise.resolve();
    client.on('notification', (msg) => {
      chain = chain.then(async () => {
        if (closed) return;
        const n = JSON.parse(msg.payload);
        if (n.session !== session) return;
        if (msg.channel === 'wa_link') {
          await showCode();
        } else if (msg.channel === 'wa_session_status') {
          console.log(`status ${session}: ${n.previous ?? '-'} -> ${n.status}${n.reason ? ` (${n.reason})` : ''}`);
          if (n.status === 'connected') resolve('connected');
          // Terminal states: waiting longer would not link the number.
          if (['conflict', 'logged_out', 'failed', 'banned'].includes(n.status)) resolve(n.status);
        }
      }).catch((err) => console.error(`error handling ${msg.channel}: ${err.message}`));
    });
    // unref: a pending timer must not keep the process alive once the work is done.
    if (timeoutMs) setTimeout(() => resolve('timeout'), timeoutMs).unref();
  });

  await showCode();
  console.log(`waiting for codes on wa_link${timeoutMs ? ` (up to ${timeoutMs / 1000} s)` : ''}`);
  const result = await outcome;
  closed = true; // notifications still queued are not handled on a closed client
  await client.end();
  if (result === 'connected') {
    console.log(`linked: ${session} is connected`);
  } else {
    console.log(`not linked: ${result}`);
    process.exitCode = 3;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
