//! Received files in an S3-compatible object store (wa.policy.media_download = 's3'),
//! through the object_store crate. Each file's key is fixed by its session and inbox
//! row, so a download run twice (a lease lost between the upload and the record)
//! overwrites the same object instead of leaving a stray one.

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;

use pgwa_core::config::S3Config;

pub struct MediaStore {
    store: AmazonS3,
    bucket: String,
    prefix: String,
}

impl MediaStore {
    /// The store `[media.s3]` names; credentials not given there come from the
    /// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, an instance role).
    pub fn from_config(c: &S3Config) -> anyhow::Result<Self> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&c.bucket)
            .with_region(&c.region)
            .with_allow_http(c.allow_http)
            // Path-style URLs (endpoint/bucket/key): what MinIO, Ceph and most stores
            // other than AWS serve; AWS still accepts them.
            .with_virtual_hosted_style_request(false);
        if let Some(e) = &c.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &c.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &c.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b.build().map_err(|e| anyhow::anyhow!("media.s3: {e}"))?;
        Ok(Self { store, bucket: c.bucket.clone(), prefix: c.prefix.clone() })
    }

    /// Puts the file of inbox row `inbox_id` under `<prefix><session>/<inbox_id>` and
    /// returns where it is (`s3://bucket/key`).
    pub async fn put(&self, session: &str, inbox_id: i64, data: Vec<u8>) -> Result<String, String> {
        let key = format!("{}{session}/{inbox_id}", self.prefix);
        let path = Path::from(key.as_str());
        self.store.put(&path, data.into()).await.map_err(|e| format!("putting the file in s3://{}/{path}: {e}", self.bucket))?;
        Ok(format!("s3://{}/{path}", self.bucket))
    }
}
