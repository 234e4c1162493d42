//! A Postgres instance of a test's own, for tests that restart or stop Postgres: doing
//! that to the machine's cluster would cut every other user of it. `initdb` runs in a
//! temporary folder; the server listens on a free 127.0.0.1 port with trust auth, and its
//! Unix socket stays inside the folder, so nothing collides with the machine's cluster.
//!
//! The binaries come from `PGWA_TEST_PG_BIN`, else the newest /usr/lib/postgresql/<v>/bin.
//! initdb and postgres refuse to run as root; as root they run as the `postgres` OS user,
//! which then owns the folder. fsync is off: the instance is thrown away after the test.

use std::path::PathBuf;
use std::process::Command;

pub struct PgInstance {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// initdb and postgres run as the `postgres` OS user.
    root: bool,
    pub port: u16,
}

impl PgInstance {
    /// Runs initdb and starts the server; returns once it accepts connections.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("pgwa-pg-").tempdir_in("/tmp").expect("temporary folder for Postgres");
        // We created the folder, so its owner is who we run as.
        let root = std::os::unix::fs::MetadataExt::uid(&dir.path().metadata().unwrap()) == 0;
        if root {
            run(Command::new("chown").arg("postgres:").arg(dir.path()));
        }
        let mut pg = Self { dir, bin: pg_bin(), root, port: 0 };
        let data = pg.dir.path().join("data");
        let init = ["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"];
        run(pg.cmd("initdb").arg("-D").arg(&data).args(init));
        // The port is free when asked; another process could take it before postgres
        // binds it, so a failed start tries another one.
        for attempt in 1.. {
            pg.port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            // initdb wrote postgresql.conf as its owner; a later line overrides an earlier
            // one, so a retry just appends another port.
            let conf = format!(
                "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
                pg.port,
                pg.dir.path().display()
            );
            let mut f = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
            std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
            // -w: pg_ctl returns once the server accepts connections.
            let out = pg.ctl(&["-w", "-t", "60", "start"]).output().expect("running pg_ctl start");
            if out.status.success() {
                return pg;
            }
            assert!(attempt < 5, "pg_ctl start failed: {}\n{}", String::from_utf8_lossy(&out.stderr), pg.log());
        }
        unreachable!()
    }

    /// A server URL without a database, like `testkit::server_url()`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Fast shutdown (every connection is cut), then the same data folder and port again.
    pub fn restart(&self) {
        run(&mut self.ctl(&["-w", "-t", "60", "-m", "fast", "restart"]));
    }

    fn ctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.cmd("pg_ctl");
        cmd.arg("-D").arg(self.dir.path().join("data")).arg("-l").arg(self.dir.path().join("log")).args(args);
        cmd
    }

    /// `name` from the binaries' folder, as the `postgres` OS user when we are root.
    fn cmd(&self, name: &str) -> Command {
        let exe = self.bin.join(name);
        let mut cmd = Command::new(if self.root { "runuser".into() } else { exe.clone() });
        if self.root {
            cmd.args(["-u", "postgres", "--"]).arg(exe);
        }
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PgInstance {
    /// Immediate stop (nothing to keep), then the TempDir removes the folder.
    fn drop(&mut self) {
        let _ = self.ctl(&["-w", "-m", "immediate", "stop"]).output();
    }
}

fn pg_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("PGWA_TEST_PG_BIN") {
        return bin.into();
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("no /usr/lib/postgresql/<version>: set PGWA_TEST_PG_BIN to the folder with initdb and pg_ctl");
    format!("/usr/lib/postgresql/{newest}/bin").into()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed: {stdout}{stderr}");
}
