//! The client examples in ecosystem/clients (Node, Python, psql) run for real against a
//! migrated database with a worker on the simulated WhatsApp side; the tests assert on
//! what they print and on what they write. The deployment files are checked in
//! tests/ecosystem_deployment.rs.
//!
//! Needs `bash ecosystem/clients/setup.sh` first (node_modules and the Python venv); the
//! tests fail, not skip, when it has not been run.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ecosystem::{Out, RUN_LIMIT, clients, require_setup, venv_python};
use common::{InProcess, count, eventually, fast_config, wait_connected};
use pgwa_testkit::TestDb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

/// A listener given --timeout 20 must exit well before it once it has its events.
const PROMPT_EXIT: Duration = Duration::from_secs(10);

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

    // With a place: the text and then a location pin, keyed by one booking, one transaction.
    let args = ["salon-42", "+55 11 99999-8888", "See you there", "--at=-23.5617,-46.6559", "--place", "Salon 42"];
    let at = run(client.command(&db, "send", &args), "send --at").await;
    at.expect_ok("send --at").expect_line("queued location job").expect_line("committed: job");
    assert_location_sent_with_its_booking(&db).await;

    // With a voice note: the file's bytes, keyed by the booking, in the same transaction.
    let note = voice_file();
    let args = ["salon-42", "+55 11 99999-8888", "Listen", "--voice", note.path().to_str().unwrap()];
    let voiced = run(client.command(&db, "send", &args), "send --voice").await;
    voiced.expect_ok("send --voice").expect_line("queued voice job").expect_line("committed: job");
    assert_voice_sent_with_its_booking(&db, "Listen").await;

    let sent = sent_ids(log.path());
    assert_eq!(sent.iter().filter(|id| **id == message_id).count(), 1, "the committed message is sent exactly once: {sent:?}");
    assert!(!sent.contains(&rolled_back_id), "the rolled-back message must never be sent: {sent:?}");
    worker.stop().await;
}

/// The last job of message type `kind` (its payload) and the text of the booking it
/// follows: the examples key a follow-up `<booking key>-<kind>`.
async fn last_follow_up(db: &TestDb, kind: &str) -> (serde_json::Value, Option<String>) {
    sqlx::query_as(
        "SELECT f.payload, (SELECT t.payload->>'text' FROM wa.jobs t
                             WHERE t.session_id = f.session_id AND t.idempotency_key || '-' || $1 = f.idempotency_key)
           FROM wa.jobs f WHERE f.payload->>'type' = $1 ORDER BY f.id DESC LIMIT 1",
    )
    .bind(kind)
    .fetch_one(&db.pool)
    .await
    .unwrap_or_else(|e| panic!("a {kind} job: {e}"))
}

/// The last location job: the place given, keyed by the booking whose text it follows.
async fn assert_location_sent_with_its_booking(db: &TestDb) {
    let (payload, text) = last_follow_up(db, "location").await;
    assert_eq!(text.as_deref(), Some("See you there"), "the pin is keyed by the booking of the text it follows");
    assert_eq!(
        (payload["latitude"].as_f64(), payload["longitude"].as_f64(), payload["name"].as_str()),
        (Some(-23.5617), Some(-46.6559), Some("Salon 42"))
    );
}

/// A three-second voice note on disk, for the examples' --voice.
fn voice_file() -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".ogg").tempfile().unwrap();
    std::fs::write(file.path(), common::media_files::ogg_opus(3)).unwrap();
    file
}

/// The last voice job: the file's bytes, keyed by the booking whose text (`text`) it follows.
async fn assert_voice_sent_with_its_booking(db: &TestDb, text: &str) {
    let (payload, booked) = last_follow_up(db, "voice").await;
    assert_eq!(booked.as_deref(), Some(text), "the note is keyed by the booking of the text it follows");
    let data = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, common::media_files::ogg_opus(3), "the file's bytes, unchanged");
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

    let vars = [
        ("session", "salon-42"),
        ("to", "+5511999998888"),
        ("text", "See you there"),
        ("latitude", "-23.5617"),
        ("longitude", "-46.6559"),
        ("place", "Salon 42"),
    ];
    let at = run(psql(&db, "send_in_transaction", &vars, "pgwa-psql-send"), "send_in_transaction.sql with a place").await;
    at.expect_ok("send_in_transaction.sql with a place").expect_line("queued location job").expect_line("committed: job");
    assert_location_sent_with_its_booking(&db).await;
    let note = voice_file();
    let vars = [("session", "salon-42"), ("to", "+5511999998888"), ("text", "Listen"), ("voice", note.path().to_str().unwrap())];
    let voiced =
        run(psql(&db, "send_in_transaction", &vars, "pgwa-psql-send"), "send_in_transaction.sql with a voice note").await;
    voiced.expect_ok("send_in_transaction.sql with a voice note").expect_line("queued voice job").expect_line("committed: job");
    assert_voice_sent_with_its_booking(&db, "Listen").await;
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
    // Until the inbox row, not a fixed window: under load the events can take seconds.
    let vars = [("seconds", "60"), ("until_inbound", "1")];
    let listener = Running::start(psql(&db, "listen", &vars, "pgwa-psql-listen"), "listen.sql");
    // psql's output is block-buffered into a pipe: watch its connection instead.
    wait_psql_running(&db, "pgwa-psql-listen", "DO $wait$%").await;
    produce_events(&db).await;
    let out = listener.finish_within(PROMPT_EXIT).await;
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

async fn check_numbers(cmd: Command, what: &str, db: &TestDb) -> Out {
    let running = Running::start(cmd, what);
    common::answer_number_check(&db.pool, "salon-42", "5511999998888", "5511977776666").await;
    let out = running.finish().await;
    out.expect_ok(what);
    out
}

#[tokio::test]
async fn node_python_and_psql_check_numbers_and_print_the_answers() {
    let db = app_db().await;
    sqlx::query("SELECT wa.add_session('salon-42', start => false)").execute(&db.pool).await.unwrap();
    let phones = ["+55 11 99999-8888", "+5511977776666"];
    for client in [Client::Node, Client::Python] {
        let what = format!("{client:?} check_numbers");
        let args = ["salon-42", phones[0], phones[1], "--timeout", "20"];
        let out = check_numbers(client.command(&db, "check_numbers", &args), &what, &db).await;
        out.expect_line("5511999998888: on WhatsApp as 5511999998888@s.whatsapp.net (LID 100000001@lid)")
            .expect_line("5511977776666: not on WhatsApp");
        sqlx::raw_sql("DELETE FROM wa.jobs; DELETE FROM wa.contacts").execute(&db.pool).await.unwrap();
    }
    let cmd =
        psql(&db, "check_numbers", &[("session", "salon-42"), ("phones", &phones.join(",")), ("timeout", "20")], "check_psql");
    let out = check_numbers(cmd, "psql check_numbers", &db).await;
    out.expect_line("job_state  | completed");
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.contains("5511")).collect();
    assert!(
        rows.iter().any(|l| l.contains("5511999998888") && l.contains(" t ") && l.contains("100000001@lid")),
        "{}",
        out.show()
    );
    assert!(rows.iter().any(|l| l.contains("5511977776666") && l.contains(" f ")), "{}", out.show());

    // Nobody answers: the example says why it stopped and exits 3.
    sqlx::raw_sql("DELETE FROM wa.jobs; DELETE FROM wa.contacts").execute(&db.pool).await.unwrap();
    let out =
        run(Client::Node.command(&db, "check_numbers", &["salon-42", phones[1], "--timeout", "1"]), "node unanswered").await;
    assert_eq!(out.status.code(), Some(3), "{}", out.show());
    out.expect_line("is available").expect_line("the session must be connected");
}

#[tokio::test]
async fn node_python_and_psql_create_a_group_and_print_it() {
    let db = app_db().await;
    sqlx::query("SELECT wa.add_session('salon-42', start => false)").execute(&db.pool).await.unwrap();
    let me = "5511900001111";
    for client in [Client::Node, Client::Python] {
        let what = format!("{client:?} create_group");
        let args = ["salon-42", "Saturday team", "+55 11 99999-8888", "+5511977776666", "--timeout", "20"];
        let running = Running::start(client.command(&db, "create_group", &args), &what);
        let jid = common::answer_group_create(&db.pool, "salon-42", me).await;
        let out = running.finish().await;
        out.expect_ok(&what)
            .expect_line(&format!("created group {jid} \"Saturday team\""))
            .expect_line(&format!("  {me} (superadmin)"))
            .expect_line("  5511999998888")
            .expect_line("  5511977776666");
        sqlx::raw_sql("DELETE FROM wa.jobs; DELETE FROM wa.groups").execute(&db.pool).await.unwrap();
    }
    let vars =
        [("session", "salon-42"), ("subject", "Saturday team"), ("phones", "+5511999998888,+5511977776666"), ("timeout", "20")];
    let running = Running::start(psql(&db, "create_group", &vars, "group_psql"), "psql create_group");
    let jid = common::answer_group_create(&db.pool, "salon-42", me).await;
    let out = running.finish().await;
    out.expect_ok("psql create_group").expect_line("job_state  | completed").expect_line(&format!("group_jid  | {jid}"));
    assert!(out.stdout.lines().any(|l| l.contains(me) && l.contains("superadmin")), "{}", out.show());

    // Nobody answers: the example says why it stopped and exits 3.
    sqlx::raw_sql("DELETE FROM wa.jobs; DELETE FROM wa.groups").execute(&db.pool).await.unwrap();
    let out = run(
        Client::Python.command(&db, "create_group", &["salon-42", "Later", "+5511977776666", "--timeout", "1"]),
        "python unanswered",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", out.show());
    out.expect_line("is available").expect_line("the session must be connected");
}

/// A vote on `poll` as the worker stores one after opening it (its wa.inbox row, whose
/// trigger announces it on wa_inbox).
async fn vote_as_worker(db: &TestDb, poll: &str, voter: &str, option: &str) {
    sqlx::query(
        "INSERT INTO wa.inbox (session_id, chat, sender, message_id, kind, quoted_id, data, sent_at)
         VALUES ('salon-42', $1, $1, 'V' || md5(random()::text), 'poll_vote', $2, jsonb_build_object('options', jsonb_build_array($3::text)), now())",
    )
    .bind(voter)
    .bind(poll)
    .bind(option)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn queued_poll(db: &TestDb) -> String {
    eventually(RUN_LIMIT, "the poll's job", || async {
        sqlx::query_scalar("SELECT message_id FROM wa.jobs WHERE payload->>'type' = 'poll' AND state = 'available'")
            .fetch_optional(&db.pool)
            .await
            .unwrap()
    })
    .await
}

#[tokio::test]
async fn node_python_and_psql_send_polls_and_count_votes() {
    let db = app_db().await;
    sqlx::query("SELECT wa.add_session('salon-42', start => false)").execute(&db.pool).await.unwrap();
    let voter = "5511999998888@s.whatsapp.net";
    for client in [Client::Node, Client::Python] {
        let what = format!("{client:?} poll");
        let args = ["salon-42", "+5511999998888", "Which day?", "Saturday", "Sunday", "--votes", "1", "--timeout", "20"];
        let running = Running::start(client.command(&db, "poll", &args), &what);
        let poll = queued_poll(&db).await;
        running.wait_for_line(&format!("message {poll}")).await;
        vote_as_worker(&db, &poll, voter, "Sunday").await;
        let out = running.finish().await;
        out.expect_ok(&what)
            .expect_line(r#"vote 1: {"options":["Sunday"]}"#)
            .expect_line(&format!("  Sunday: 1 ({voter})"))
            .expect_line("  Saturday: 0");
        sqlx::raw_sql("DELETE FROM wa.jobs; DELETE FROM wa.inbox").execute(&db.pool).await.unwrap();
    }
    let vars = [("session", "salon-42"), ("to", "+5511999998888"), ("question", "Which day?"), ("options", "Saturday,Sunday")];
    let out = run(psql(&db, "poll", &vars, "poll_psql"), "psql poll").await;
    out.expect_ok("psql poll");
    let poll = out.after("message ");
    vote_as_worker(&db, &poll, voter, "Saturday").await;
    let out = run(psql(&db, "poll", &[("poll_id", &poll)], "poll_psql"), "psql poll results").await;
    out.expect_ok("psql poll results");
    let cells = |option: &str| -> Vec<String> {
        let line = out.stdout.lines().find(|l| l.contains(option)).unwrap_or_else(|| panic!("no {option} row:\n{}", out.show()));
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    assert_eq!(cells("Saturday"), ["1", "Saturday", "1", &format!("{{{voter}}}")]);
    assert_eq!(cells("Sunday"), ["2", "Sunday", "0", "{}"]);
}
