//! A local S3-compatible server for the tests (moto, installed by tests/setup.sh into
//! tests/s3/.venv), with one bucket, and a client to read what a worker put there.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;

pub const BUCKET: &str = "pgwa-media";
const KEY_ID: &str = "pgwa-test";
const SECRET: &str = "pgwa-test-secret";

pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    pub async fn start() -> Self {
        let moto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/.venv/bin/moto_server");
        assert!(moto.exists(), "{} is missing: run `bash tests/setup.sh`", moto.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        // Up once the bucket can be made (moto answers S3 calls from its first second).
        super::eventually(Duration::from_secs(30), "moto to create the bucket", || async {
            let out = Command::new("curl").args(["-sf", "-X", "PUT", &format!("{}/{BUCKET}", server.endpoint)]).output().ok()?;
            out.status.success().then_some(())
        })
        .await;
        server
    }

    /// The worker's settings for this store, as environment variables.
    pub fn worker_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGWA_MEDIA__S3__BUCKET", BUCKET.into()),
            ("PGWA_MEDIA__S3__ENDPOINT", self.endpoint.clone()),
            ("PGWA_MEDIA__S3__ALLOW_HTTP", "true".into()),
            ("PGWA_MEDIA__S3__ACCESS_KEY_ID", KEY_ID.into()),
            ("PGWA_MEDIA__S3__SECRET_ACCESS_KEY", SECRET.into()),
            ("PGWA_MEDIA__S3__PREFIX", "inbound/".into()),
        ]
    }

    pub fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .build()
            .unwrap()
    }

    /// The object at `location` (`s3://bucket/key`), read through the S3 API.
    pub async fn read(&self, location: &str) -> Vec<u8> {
        let key = location.strip_prefix(&format!("s3://{BUCKET}/")).unwrap_or_else(|| panic!("not in {BUCKET}: {location}"));
        let got = self.client().get(&Path::from(key)).await.unwrap_or_else(|e| panic!("reading {location}: {e}"));
        got.bytes().await.unwrap().to_vec()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
