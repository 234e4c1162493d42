//! `media_download`: fetch an inbound message's file from WhatsApp's media hosts,
//! decrypt it, check it against the SHA-256 the message named, and keep it: in wa.media,
//! or in the object store with wa.media saying where (wa.policy.media_download = 's3').
//! A file over wa.policy.media_max_bytes is not fetched (status too_large); one that does
//! not check out fails the job for good (status failed).

use serde_json::json;
use sha2::{Digest, Sha256};

use super::{Handler, JobCtx, session_error};
use pgwa_core::job::Outcome;
use pgwa_core::job::args::MediaDownloadArgs;
use pgwa_core::wa::SendError;
use pgwa_pg::media::Kept;

pub struct MediaDownload;

impl Handler for MediaDownload {
    type Args = MediaDownloadArgs;
    async fn run(ctx: &JobCtx<'_>, args: MediaDownloadArgs) -> Outcome {
        let Some(fence) = ctx.fence() else { return Outcome::fail("media_download job without session") };
        let id = args.inbox_id;
        let file = match pgwa_pg::media::inbox_file(ctx.pool, &fence.session, id).await {
            Ok(Some(f)) => f,
            Ok(None) => return Outcome::completed(json!({ "stored": false, "reason": "the message or its file is gone" })),
            Err(e) => return Outcome::retry(format!("reading inbox row {id}: {e}")),
        };
        if file.stored {
            return Outcome::completed(json!({ "stored": true }));
        }
        let size = file.media["file_length"].as_i64().unwrap_or(0);
        if size > file.max_bytes {
            return match pgwa_pg::media::mark(ctx.pool, &fence, id, "too_large").await {
                Ok(_) => Outcome::completed(
                    json!({ "stored": false, "reason": format!("{size} bytes is over wa.policy.media_max_bytes ({})", file.max_bytes) }),
                ),
                Err(e) => Outcome::retry(format!("marking inbox row {id}: {e}")),
            };
        }
        let client = match ctx.slots.client_for(&fence.session, fence.epoch) {
            Ok(c) => c,
            Err(_) => return Outcome::Release,
        };
        let data = match client.download_media(&file.kind, &file.media).await {
            Ok(d) => d,
            Err(SendError::Permanent(e)) => {
                let _ = pgwa_pg::media::mark(ctx.pool, &fence, id, "failed").await;
                return Outcome::fail(e);
            }
            Err(e) => return session_error(e),
        };
        let sha256 = Sha256::digest(&data).to_vec();
        let named = file.media["file_sha256"]
            .as_str()
            .and_then(|s| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s).ok());
        if named.as_ref() != Some(&sha256) {
            let _ = pgwa_pg::media::mark(ctx.pool, &fence, id, "failed").await;
            return Outcome::fail("the file's SHA-256 is not the one its message named");
        }
        if data.len() as i64 > file.max_bytes {
            let _ = pgwa_pg::media::mark(ctx.pool, &fence, id, "too_large").await;
            return Outcome::completed(json!({ "stored": false, "reason": "larger than its message said and over the limit" }));
        }
        let size = data.len();
        let mimetype = file.media["mimetype"].as_str();
        let stored = if file.target == "s3" {
            let Some(store) = ctx.media_store else {
                let _ = pgwa_pg::media::mark(ctx.pool, &fence, id, "failed").await;
                return Outcome::fail(
                    "wa.policy.media_download is 's3' but this worker has no object store: set media.s3.bucket \
                     (PGWA_MEDIA__S3__BUCKET) and its endpoint and credentials, then retry the job",
                );
            };
            let location = match store.put(&fence.session, id, data).await {
                Ok(l) => l,
                Err(e) => return Outcome::retry(e),
            };
            pgwa_pg::media::store(
                ctx.pool,
                &fence,
                id,
                mimetype,
                Kept::Object { location: &location, size: size as i64 },
                &sha256,
            )
            .await
        } else {
            pgwa_pg::media::store(ctx.pool, &fence, id, mimetype, Kept::Bytes(&data), &sha256).await
        };
        match stored {
            Ok(true) => Outcome::completed(json!({ "stored": true, "size": size })),
            Ok(false) => Outcome::Release,
            Err(e) => Outcome::retry(format!("storing the file of inbox row {id}: {e}")),
        }
    }
}
