// Which phone numbers are on WhatsApp: asks through a connected session (a
// check_numbers job), waits for its answers on wa_contacts, and prints them from
// wa.contacts, with the LID WhatsApp uses for each number.
//
//   node check_numbers.js <session> <phone>... [--timeout SECONDS]
'use strict';

const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node check_numbers.js <session> <phone>... [--timeout SECONDS]';

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length < 2) fail(usage);
  const [session, ...phones] = positional;
  const timeoutMs = (options.timeout ? Number(options.timeout) : 60) * 1000;
  const client = await connect();
  // Listening before enqueueing, so the answer cannot come before we wait for it.
  await client.query('LISTEN wa_contacts');
  const answeredJobs = new Set();
  let wake = () => {};
  client.on('notification', (msg) => {
    answeredJobs.add(Number(JSON.parse(msg.payload).job));
    wake();
  });
  const { rows } = await client.query('SELECT wa.check_numbers($1, $2) AS job', [session, phones]);
  const job = Number(rows[0].job);
  console.log(`queued job ${job}: checking ${phones.length} number(s) through ${session}`);

  const answered = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    wake = () => {
      if (answeredJobs.has(job)) {
        clearTimeout(timer);
        resolve(true);
      }
    };
    wake();
  });
  if (!answered) {
    const { rows: s } = await client.query(
      "SELECT state, errors->-1->>'error' AS error FROM wa.jobs WHERE id = $1", [job]);
    console.log(`no answer yet: job ${job} is ${s[0].state}${s[0].error ? `: ${s[0].error}` : ''}`);
    console.log('the session must be connected for the check to run');
    await client.end();
    process.exit(s[0].state === 'dead' ? 4 : 3);
  }
  const { rows: found } = await client.query(
    `SELECT c.phone, c.on_whatsapp, c.jid, c.lid
       FROM wa.jobs j CROSS JOIN LATERAL jsonb_array_elements_text(j.payload->'phones') p
       JOIN wa.contacts c ON c.session_id = j.session_id AND c.phone = p
      WHERE j.id = $1 ORDER BY c.phone`, [job]);
  for (const c of found) {
    console.log(`${c.phone}: ${c.on_whatsapp ? `on WhatsApp as ${c.jid}${c.lid ? ` (LID ${c.lid})` : ''}` : 'not on WhatsApp'}`);
  }
  await client.end();
}

main().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
