// Creates a WhatsApp group of a session's number and the people named (a group job),
// waits for the server's answer, and prints the group from wa.groups: its JID (the
// recipient for messages to it) and its members.
//
//   node create_group.js <session> <subject> <phone>... [--timeout SECONDS]
'use strict';

const { connect, parseArgs, fail } = require('./lib');

const usage = 'usage: node create_group.js <session> <subject> <phone>... [--timeout SECONDS]';

async function main() {
  const { positional, options } = parseArgs(process.argv.slice(2), usage);
  if (positional.length < 3) fail(usage);
  const [session, subject, ...phones] = positional;
  const deadline = Date.now() + (options.timeout ? Number(options.timeout) : 60) * 1000;
  const client = await connect();
  // wa_groups announces the new row; the job's state says when it is all done.
  await client.query('LISTEN wa_groups');
  let wake = () => {};
  client.on('notification', () => wake());
  const { rows } = await client.query('SELECT wa.create_group($1, $2, $3) AS job', [session, subject, phones]);
  const job = Number(rows[0].job);
  console.log(`queued job ${job}: creating group "${subject}" through ${session}`);

  let state;
  for (;;) {
    const { rows: s } = await client.query(
      "SELECT state, result, errors->-1->>'error' AS error FROM wa.jobs WHERE id = $1", [job]);
    state = s[0];
    if (['completed', 'dead', 'cancelled'].includes(state.state) || Date.now() >= deadline) break;
    // Woken by a notification, or a second later at most.
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, Math.min(1000, Math.max(0, deadline - Date.now())));
    });
  }
  if (state.state !== 'completed') {
    console.log(`no group yet: job ${job} is ${state.state}${state.error ? `: ${state.error}` : ''}`);
    if (state.state !== 'dead') console.log('the session must be connected for the group to be created');
    await client.end();
    process.exit(state.state === 'dead' ? 4 : 3);
  }
  const { rows: groups } = await client.query(
    'SELECT jid, subject, participants FROM wa.groups WHERE session_id = $1 AND jid = $2',
    [session, state.result.group]);
  const g = groups[0];
  console.log(`created group ${g.jid} "${g.subject}"`);
  for (const p of g.participants) {
    console.log(`  ${p.phone || p.jid}${p.admin ? ` (${p.admin})` : ''}`);
  }
  await client.end();
}

main().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
