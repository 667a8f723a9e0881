//! A throwaway S3-compatible server (moto) with one fresh bucket.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Result, Unavailable, free_port, poll_until, unique_name};

/// How long moto may take to start answering.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A `moto_server` child process on a free loopback port with a freshly
/// created bucket; killed on drop.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    endpoint: String,
    bucket: String,
}

impl MotoServer {
    /// Starts `moto_server`, waits until it answers HTTP and creates a uniquely named bucket.
    pub async fn start() -> Result<MotoServer> {
        let mut last = Unavailable("moto_server did not start".into());
        // A port can be taken between choosing and binding it: try a few.
        for _ in 0..3 {
            match Self::try_start().await {
                Ok(server) => return Ok(server),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn try_start() -> Result<MotoServer> {
        let port = free_port()?;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Unavailable(format!("moto_server not runnable (pip install 'moto[server]'): {e}")))?;
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: unique_name("silt-test-"),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Unavailable(format!("http client: {e}")))?;
        let endpoint = server.endpoint.clone();
        let mut exited = None;
        poll_until("moto_server", START_DEADLINE, Duration::from_millis(50), || {
            // A child that died (say, port taken) will never answer.
            if exited.is_none() {
                exited = server.child.try_wait().ok().flatten();
            }
            let dead = exited;
            let req = http.get(format!("{endpoint}/")).send();
            async move {
                if let Some(status) = dead {
                    return Ok(Err(format!("moto_server exited: {status}")));
                }
                req.await.map(|_| Ok(())).map_err(|e| e.to_string())
            }
        })
        .await?
        .map_err(Unavailable)?;
        let url = format!("{}/{}", server.endpoint, server.bucket);
        let resp = http
            .put(&url)
            .send()
            .await
            .map_err(|e| Unavailable(format!("create bucket {url}: {e}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            return Err(Unavailable(format!("create bucket {url}: {status} {body}")));
        }
        // Avoid a "not answering" child being mistaken for a good one later.
        let _ = server.child.try_wait();
        Ok(server)
    }

    /// Base URL of the server, e.g. `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bucket created for this server.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Environment for a child process (or an S3 client) to use this server with `s3://bucket/prefix`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_with_a_bucket_and_stores_objects() {
        let moto = crate::require!(MotoServer::start().await);
        let env = moto.env();
        assert!(env.iter().any(|(k, v)| k == "AWS_ENDPOINT_URL" && v == moto.endpoint()));
        let http = reqwest::Client::new();
        let url = format!("{}/{}/dir/key", moto.endpoint(), moto.bucket());
        let put = http
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body("hello")
            .send()
            .await
            .expect("put");
        assert!(put.status().is_success(), "{}", put.status());
        // moto refuses anonymous reads; any credential will do.
        let got = http
            .get(&url)
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
            )
            .send()
            .await
            .expect("get");
        assert!(got.status().is_success(), "{}", got.status());
        assert_eq!(got.text().await.expect("body"), "hello");
    }
}
