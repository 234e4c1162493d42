// Send a poll, then count the votes as they come: each vote arrives on wa_inbox (kind
// poll_vote), opened by the worker; wa.poll_results has the tally.
//
//   node poll.js <session> <to> <question> <option> <option>... [--pick N] [--votes N] [--timeout SECONDS]
//
// --pick: how many options a voter may choose (default 1; 0 for any number).
// --votes: stop after this many votes (default: just send, do not wait).
'use strict';

const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node poll.js <session> <to> <question> <option> <option>... [--pick N] [--votes N] [--timeout SECONDS]';

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length < 5) fail(usage);
  const [session, to, question, ...choices] = positional;
  const pick = options.pick === undefined ? 1 : Number(options.pick);
  const wanted = options.votes ? Number(options.votes) : 0;
  const timeoutMs = (options.timeout ? Number(options.timeout) : 300) * 1000;
  const client = await connect();
  if (wanted) await client.query('LISTEN wa_inbox'); // before sending: no vote missed
  const { rows } = await client.query(
    'SELECT job_id, message_id FROM wa.send_poll($1, $2, $3, $4, $5)', [session, to, question, choices, pick]);
  const pollId = rows[0].message_id;
  console.log(`queued poll job ${rows[0].job_id} message ${pollId}`);
  if (!wanted) return client.end();

  const tally = async () => {
    const { rows: r } = await client.query(
      'SELECT option, votes, voters FROM wa.poll_results WHERE poll_id = $1 ORDER BY position', [pollId]);
    for (const o of r) console.log(`  ${o.option}: ${o.votes}${o.votes > 0 ? ` (${o.voters.join(', ')})` : ''}`);
    return r;
  };
  let seen = 0;
  const done = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    let chain = Promise.resolve();
    client.on('notification', (msg) => {
      const n = JSON.parse(msg.payload);
      if (n.kind !== 'poll_vote' || n.session !== session) return;
      chain = chain.then(async () => {
        // Votes on other polls of the session are skipped by reading the row.
        const { rows: v } = await client.query('SELECT data FROM wa.inbox WHERE id = $1 AND quoted_id = $2', [n.id, pollId]);
        if (!v.length) return;
        seen += 1;
        console.log(`vote ${seen}: ${JSON.stringify(v[0].data)}`);
        await tally();
        if (seen >= wanted) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
  });
  await client.end();
  if (!done) {
    console.log(`timed out after ${seen} vote(s)`);
    process.exitCode = 3;
  }
}

main().catch((err) => {
  console.error(`error ${err.code || ''}: ${err.message}`);
  process.exit(1);
});
