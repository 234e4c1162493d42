// pgwa under PM2, for teams that already run their apps with it:
//   pm2 start ecosystem/pm2/ecosystem.config.js && pm2 save
//
// Knobs of this file (not of pgwa, hence no PGWA_ prefix: PM2 hands its own environment
// to the apps, and the worker refuses PGWA_ variables it does not know):
//   PM2_PGWA_INSTANCES  workers to run (2)        PM2_PGWA_BIN  the binary (/usr/local/bin/pgwa)
//   PM2_PGWA_HTTP_PORT  first /health port (8080), one port per worker
//
// Several instances are fine, on one machine or many: Postgres leases spread the
// sessions over the live workers (each takes its fair share), so PM2 needs no cluster
// mode or sticky routing. One process can hold hundreds of sessions; more instances are
// for availability, not for one number per process as with Baileys.
'use strict';

const INSTANCES = Number(process.env.PM2_PGWA_INSTANCES || 2);
const HTTP_PORT = Number(process.env.PM2_PGWA_HTTP_PORT || 8080);

module.exports = {
  apps: Array.from({ length: INSTANCES }, (_, i) => ({
    // One app entry per worker rather than `instances: N`: PM2's cluster mode is for
    // Node programs, and each worker needs its own /health port.
    name: `pgwa-${i + 1}`,
    script: process.env.PM2_PGWA_BIN || '/usr/local/bin/pgwa',
    args: 'run',
    interpreter: 'none', // a native binary, not a Node script
    exec_mode: 'fork',
    autorestart: true,
    // A crash loop (bad config, database down) backs off instead of spinning.
    exp_backoff_restart_delay: 200,
    max_restarts: 50,
    min_uptime: '10s',
    // Graceful stop: PM2 sends SIGINT, then SIGKILL after kill_timeout. The worker
    // treats SIGINT like SIGTERM: stop claiming, wait up to worker.shutdown_timeout_ms
    // (20 s) for running sends, release its leases. kill_timeout leaves room above that.
    kill_timeout: 45000,
    merge_logs: true,
    time: true,
    env: {
      PGWA_DATABASE_URL: process.env.PGWA_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/pgwa',
      PGWA_LOG__FORMAT: 'json',
      PGWA_WORKER__SHUTDOWN_TIMEOUT_MS: '20000',
      PGWA_HTTP__LISTEN: `127.0.0.1:${HTTP_PORT + i}`,
    },
  })),
};
