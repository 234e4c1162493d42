// Shared bits of the examples: the connection string and a tiny argument parser.
'use strict';

const { Client } = require('pg');

// PGWA_DATABASE_URL first (the same variable the worker reads), then DATABASE_URL,
// then the worker's default, so the examples talk to the database the worker uses.
function databaseUrl() {
  return process.env.PGWA_DATABASE_URL || process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/pgwa';
}

async function connect() {
  const client = new Client({ connectionString: databaseUrl(), application_name: 'pgwa-node-example' });
  await client.connect();
  return client;
}

// "--flag value", "--flag=value" and "--switch" options after the positional arguments.
function parseArgs(argv, usage) {
  const positional = [];
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log(usage);
      process.exit(0);
    } else if (a.startsWith('--') && a.includes('=')) {
      const eq = a.indexOf('=');
      options[a.slice(2, eq)] = a.slice(eq + 1);
    } else if (a.startsWith('--')) {
      const key = a.slice(2);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) options[key] = true;
      else options[key] = argv[++i];
    } else {
      positional.push(a);
    }
  }
  return { positional, options };
}

function fail(message) {
  console.error(message);
  process.exit(2);
}

module.exports = { connect, databaseUrl, parseArgs, fail };
