//! The published image, built and started for real. ecosystem/docker/build-local.sh builds
//! ecosystem/docker/Dockerfile with podman (no Docker engine and no image registry here:
//! it makes the base images from Debian's packages and this machine's toolchain). The test
//! then starts the image as a container runtime would, with what the image itself declares
//! (entrypoint, command, user, environment), in a network namespace of its own with only
//! Postgres's socket shared in, and asks /health from inside that namespace, also with the
//! image's own HEALTHCHECK command. `podman run` itself cannot start containers in this
//! sandbox (setrlimit is refused), so the namespace, chroot and user are set up with
//! util-linux's unshare and coreutils' chroot over the image's mounted root file system.
//!
//! The first build on a machine is a release build of the workspace, about 20 minutes on
//! 2 cores; later builds reuse the build's cache mounts and take a few minutes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

const TAG: &str = "localhost/pgwa:test";
/// Where the shared Postgres socket appears inside the container.
const SOCKET_DIR: &str = "/run/postgresql";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {what}: {e} (run `bash tests/setup.sh` first)"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command, what: &str) -> String {
    String::from_utf8(run(cmd, what).stdout).expect("utf-8").trim().to_owned()
}

/// The image's working container with its root file system mounted; removed on drop.
struct Mounted {
    container: String,
    root: PathBuf,
}

impl Mounted {
    fn new(image: &str) -> Self {
        let container =
            stdout(Command::new("buildah").args(["from", "--pull=never", "--quiet", image]), "buildah from the image");
        let root = PathBuf::from(stdout(Command::new("buildah").args(["mount", &container]), "buildah mount"));
        Self { container, root }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("buildah").args(["rm", &self.container]).stdout(Stdio::null()).status();
    }
}

/// The started container: the unshare process (in the new namespaces) and pgwa under it.
struct Started {
    unshare: Child,
    pgwa: Pid,
    /// stdout and stderr, read as they come so a full pipe never stalls the worker.
    logs: Vec<std::thread::JoinHandle<String>>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = kill(self.pgwa, Signal::SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

impl Started {
    /// A command run in the container's network namespace.
    fn in_netns(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["--target", &self.unshare.id().to_string(), "--net", "--"]).arg(program);
        cmd
    }
}

/// Starts the image's entrypoint and command, as its user, with its environment plus
/// `extra_env`, in fresh network and mount namespaces: only loopback inside, so the
/// image's fixed port 8080 cannot clash with the host, and Postgres is reached through
/// its Unix socket, bind-mounted in like a volume.
fn start(mounted: &Mounted, config: &Value, extra_env: &[(&str, String)]) -> Started {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("string").to_owned()).collect()).unwrap_or_default()
    };
    let mut argv = strings(&config["Entrypoint"]);
    argv.extend(strings(&config["Cmd"]));
    let user = config["User"].as_str().expect("the image sets a user").to_owned();
    let host_socket = std::env::var("PGWA_TEST_SOCKET_DIR").unwrap_or_else(|_| "/var/run/postgresql".into());

    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--fork", "--", "sh", "-euc"])
        .arg(concat!(
            "ip link set lo up\n",
            "mount -t proc proc \"$1/proc\"\n",
            "mkdir -p \"$1$2\" && mount --bind \"$3\" \"$1$2\"\n",
            "root=\"$1\" user=\"$4\"; shift 4\n",
            "exec chroot --userspec=\"$user\" \"$root\" \"$@\"\n",
        ))
        .arg("container")
        .arg(&mounted.root)
        .arg(SOCKET_DIR)
        .arg(&host_socket)
        .arg(&user)
        .args(&argv)
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for kv in strings(&config["Env"]) {
        let (k, v) = kv.split_once('=').expect("KEY=value");
        cmd.env(k, v);
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut unshare = cmd.spawn().expect("unshare (util-linux) starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let logs = vec![drain(Box::new(unshare.stdout.take().unwrap())), drain(Box::new(unshare.stderr.take().unwrap()))];
    let pid = unshare.id();
    // unshare --fork runs the entrypoint as its only child; sh and chroot exec into it.
    let t = Instant::now();
    let pgwa = loop {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next() {
            let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
            if comm.trim() == "pgwa" {
                break Pid::from_raw(child.parse().unwrap());
            }
        }
        if let Some(status) = unshare.try_wait().unwrap() {
            let logs: String = logs.into_iter().map(|h| h.join().unwrap()).collect();
            panic!("the container exited ({status}) at once:\n{logs}");
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the image's entrypoint did not start within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    Started { unshare, pgwa, logs }
}

#[tokio::test]
async fn the_published_image_builds_starts_as_its_user_and_answers_health() {
    // Build: the Dockerfile as published, through the script a user without Docker runs.
    run(
        Command::new("bash").arg(root().join("ecosystem/docker/build-local.sh")).arg(TAG).stdin(Stdio::null()),
        "ecosystem/docker/build-local.sh",
    );
    let inspect: Value = serde_json::from_str(&stdout(
        Command::new("podman").args(["image", "inspect", "--format", "{{json .Config}}", TAG]),
        "podman image inspect",
    ))
    .expect("the image's config is JSON");
    assert_eq!(inspect["User"], "10001:10001", "the image runs as the unprivileged user: {inspect}");
    let health: Value = serde_json::from_str(&stdout(
        Command::new("podman").args(["image", "inspect", "--format", "{{json .HealthCheck}}", TAG]),
        "podman image inspect",
    ))
    .expect("the image's health check is JSON");
    assert_eq!(health["Test"][0], "CMD-SHELL", "the image keeps its HEALTHCHECK (Docker format): {health}");
    let health_cmd = health["Test"][1].as_str().unwrap().to_owned();

    // A database of its own that does not exist yet: `pgwa run` creates and migrates it
    // from what is compiled into the binary, which is all the image carries.
    let server = pgwa_testkit::server_url();
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let db = format!("pgwa_t_{secs}_image_{}", std::process::id());
    let mounted = Mounted::new(TAG);
    let mut started =
        start(&mounted, &inspect, &[("PGWA_DATABASE_URL", format!("postgres:///{db}?host={SOCKET_DIR}&user=postgres"))]);

    let uid = std::fs::read_to_string(format!("/proc/{}/status", started.pgwa)).unwrap();
    let uid = uid.lines().find(|l| l.starts_with("Uid:")).unwrap().to_owned();
    assert_eq!(uid.split_whitespace().nth(1), Some("10001"), "pgwa runs as uid 10001: {uid}");

    // /health from inside the container's network, as a published port would forward it.
    let t = Instant::now();
    let body = loop {
        let out = started.in_netns("curl").args(["-fsS", "http://127.0.0.1:8080/health"]).output().unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        if let Some(status) = started.unshare.try_wait().unwrap() {
            let logs: String = started.logs.drain(..).map(|h| h.join().unwrap()).collect();
            panic!("the container exited ({status}) before answering /health:\n{logs}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the container answered no /health on 8080 within 60 s: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("/health is not JSON ({e}): {body}"));
    assert_eq!(body["status"], "ok", "{body}");

    // The image's own HEALTHCHECK, run inside the image as its user (curl comes from it).
    let mut check = started.in_netns("chroot");
    check.arg(format!("--userspec={}", inspect["User"].as_str().unwrap())).arg(&mounted.root);
    let path = inspect["Env"].as_array().unwrap().iter().find_map(|kv| kv.as_str()?.strip_prefix("PATH="));
    check.args(["/bin/sh", "-c", &health_cmd]).env_clear().env("PATH", path.expect("the image sets PATH"));
    run(&mut check, &format!("the image's HEALTHCHECK `{health_cmd}`"));

    let mut conn = PgConnection::connect(&format!("{server}/{db}")).await.expect("the database pgwa created");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM wa._sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .expect("pgwa migrated its database");
    assert!(applied > 0, "migrations applied from the binary");
    conn.close().await.unwrap();

    // SIGTERM, as `docker stop` sends: a clean exit, and every log line JSON (the image
    // sets PGWA_LOG__FORMAT=json) with the start line naming the listen address.
    kill(started.pgwa, Signal::SIGTERM).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(status) = started.unshare.try_wait().unwrap() {
            break status;
        }
        assert!(t.elapsed() < Duration::from_secs(45), "the container did not stop within 45 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    let logs: String = started.logs.drain(..).map(|h| h.join().unwrap()).collect();
    assert!(status.success(), "pgwa in the image stops cleanly on SIGTERM ({status}):\n{logs}");
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}\n{logs}")))
        .collect();
    assert!(lines.iter().any(|l| l.to_string().contains("0.0.0.0:8080")), "the start line names the listen address:\n{logs}");

    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}
