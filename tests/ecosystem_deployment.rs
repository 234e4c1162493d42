//! The deployment files in ecosystem/ (systemd, PM2, Docker, Kubernetes, Grafana),
//! checked with the tools this machine has.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::count;
use common::ecosystem::{Out, RUN_LIMIT, compose_schema, require_setup, root, venv_python};
use pgwa_testkit::TestDb;

// --- deployment files -------------------------------------------------------------------
//
// What runs here: systemd-analyze (verify, offline security score); PM2 itself (from
// ecosystem/pm2/package.json); kubectl kustomize and kubernetes-validate (render the
// Kubernetes files offline and check them against the API schemas); the Compose JSON
// schema and PyYAML (compose); a real worker answering the containers' health-check
// command; structural assertions. The image itself is built and started by
// tests/container_image.rs. What does not run: Docker (no engine here, and no compose
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
    pgwa_core::config::Config::default().worker.shutdown_timeout_ms / 1000
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
            .env("PGWA_WHATSAPP__BACKEND", "simulated")
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
/// Files the build reads besides Rust sources: what `include_str!`, `include_bytes!`,
/// `migrate!` and `query_file!` name in any crate of the workspace, the checked queries'
/// descriptions and the Cargo configuration that makes the build use them.
fn compile_time_inputs() -> Vec<String> {
    let mut found = vec![".sqlx".to_owned(), ".cargo/config.toml".to_owned(), "Cargo.lock".to_owned()];
    let mut stack: Vec<PathBuf> = ["src", "crates", "loopback"].iter().map(|d| root().join(d)).collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "Cargo.toml") {
                found.push(p.strip_prefix(root()).unwrap().to_string_lossy().into_owned());
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let crate_root = p.ancestors().find(|a| a.join("Cargo.toml").is_file()).unwrap().to_path_buf();
                for (marker, relative_to_file) in
                    [("include_str!(\"", true), ("include_bytes!(\"", true), ("migrate!(\"", false), ("query_file", false)]
                {
                    for chunk in text.split(marker).skip(1) {
                        // query_file!("path", ...) and its _as/_scalar forms.
                        let Some(rel) = chunk.split('"').nth(usize::from(marker == "query_file")) else { continue };
                        if marker == "query_file" && !chunk.starts_with(['!', '_']) {
                            continue;
                        }
                        let base = if relative_to_file { p.parent().unwrap().to_path_buf() } else { crate_root.clone() };
                        let Ok(abs) = std::fs::canonicalize(base.join(rel)) else {
                            panic!("{} includes missing {rel}", p.display())
                        };
                        found.push(abs.strip_prefix(root()).unwrap().to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
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

    // The build stage copies the whole context; .dockerignore must leave in every file the
    // build reads (a workspace member, .sqlx/ and .cargo/ were once missing from the
    // image's build) and leave out what would make the context huge or leak installs.
    assert!(build.iter().any(|(k, v)| k == "COPY" && v == ". ."), "the build stage copies the workspace");
    let ignored: Vec<String> = std::fs::read_to_string(root().join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches("**/").trim_end_matches('/').to_owned())
        .collect();
    for must in ["target", ".git", "node_modules", ".venv"] {
        assert!(ignored.iter().any(|i| i == must), ".dockerignore must leave out {must}");
    }
    let inputs = compile_time_inputs();
    assert!(
        inputs.iter().any(|i| i == "crates/pg/Cargo.toml") && inputs.iter().any(|i| i.starts_with("crates/pg/queries/")),
        "{inputs:?}"
    );
    for input in &inputs {
        for part in input.split('/') {
            let glob = |pat: &str| pat.strip_prefix('*').map_or(pat == part, |suffix| part.ends_with(suffix));
            assert!(!ignored.iter().any(|i| glob(i)), "{input} is needed by the build but .dockerignore leaves it out");
        }
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
    // `kubectl apply -k ecosystem/kubernetes` must never overwrite a real Secret with the
    // example's placeholder: the example Secret is only in the example-secret overlay.
    let base = std_run(std::process::Command::new(&kubectl).arg("kustomize").arg(ecosystem("kubernetes")), "kubectl kustomize");
    assert!(base.status.success(), "kubectl kustomize ecosystem/kubernetes fails:\n{}", base.show());
    let base_docs = yaml_docs(&base.stdout, "the rendered manifests");
    assert!(base_docs.iter().all(|d| d["kind"] != "Secret"), "ecosystem/kubernetes applies a Secret");
    assert!(base_docs.iter().any(|d| d["kind"] == "Deployment"));
    let out = std_run(
        std::process::Command::new(kubectl).arg("kustomize").arg(ecosystem("kubernetes/example-secret")),
        "kubectl kustomize",
    );
    assert!(out.status.success(), "kubectl kustomize ecosystem/kubernetes/example-secret fails:\n{}", out.show());
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
    let exported = std::fs::read_to_string(root().join("crates/core/src/metrics.rs")).unwrap();
    let mut used = std::collections::HashSet::new();
    for e in &exprs {
        for (i, _) in e.match_indices("pgwa_") {
            let name: String = e[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let base =
                ["_bucket", "_sum", "_count"].iter().fold(name.clone(), |n, s| n.strip_suffix(s).map(str::to_owned).unwrap_or(n));
            assert!(
                exported.contains(&format!("\"{base}\"")),
                "the dashboard queries {name}, which crates/core/src/metrics.rs does not export"
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
