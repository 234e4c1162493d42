// Read a message's delivery status: queued -> sent (server ack) -> delivered -> read,
// or failed. Prints the row from wa.outbound, and with --wait-for follows wa_outbound
// until the message reaches that status.
//
//   node status.js <message_id> [--wait-for sent|delivered|read] [--timeout SECONDS]
'use strict';

const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node status.js <message_id> [--wait-for sent|delivered|read] [--timeout SECONDS]';
const ORDER = ['queued', 'sent', 'delivered', 'read'];

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length !== 1) fail(usage);
  const [messageId] = positional;
  const waitFor = options['wait-for'] || null;
  if (waitFor && !ORDER.includes(waitFor)) fail(usage);
  const timeoutMs = (options.timeout ? Number(options.timeout) : 30) * 1000;
  const client = await connect();

  const read = async () => {
    const { rows } = await client.query(
      `SELECT job_id, session, chat, status, job_state, attempts, last_error, sent_at, delivered_at, read_at
         FROM wa.outbound WHERE message_id = $1`,
      [messageId],
    );
    return rows[0];
  };
  const print = (m) => {
    const times = ['sent_at', 'delivered_at', 'read_at']
      .filter((k) => m[k])
      .map((k) => `${k}=${m[k].toISOString()}`)
      .join(' ');
    const err = m.last_error ? ` last_error=${m.last_error}` : '';
    console.log(`message ${messageId} (job ${m.job_id}, ${m.session} -> ${m.chat}): ${m.status} [job ${m.job_state}, attempts ${m.attempts}] ${times}${err}`);
  };
  const reached = (m) => m.status === 'failed' || ORDER.indexOf(m.status) >= ORDER.indexOf(waitFor);

  let m;
  if (waitFor) {
    await client.query('LISTEN wa_outbound'); // before reading, so no change is missed
  }
  m = await read();
  if (!m) {
    console.error(`no message with id ${messageId}`);
    await client.end();
    process.exit(1);
  }
  print(m);
  if (waitFor && !reached(m)) {
    m = await new Promise((resolve) => {
      let chain = Promise.resolve();
      const timer = setTimeout(() => {
        finished = true;
        resolve(null);
      }, timeoutMs);
      let finished = false;
      client.on('notification', (msg) => {
        chain = chain.then(async () => {
          if (finished) return; // later notifications while closing
          const n = JSON.parse(msg.payload);
          if (!(n.message_ids || []).includes(messageId)) return;
          const now = await read();
          if (!now) return;
          print(now);
          if (reached(now)) {
            finished = true;
            clearTimeout(timer);
            resolve(now);
          }
        });
      });
    });
    if (!m) {
      console.log(`timed out waiting for ${waitFor}`);
      process.exitCode = 3;
    }
  }
  await client.end();
  if (m && m.status === 'failed') process.exitCode = 4;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
