//! A full cache disk degrades the agent to object storage; it
//! never stops it, never acknowledges falsely, never loses data.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use silt_e2e::{Client, Silt, TempDir};

/// A tmpfs of `size` mounted at `dir`, unmounted on drop. `None` when this
/// machine does not let us mount (not root, no mount namespace rights).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cache_disk_degrades_to_object_storage() {
    let dir = TempDir::new("cachefault");
    let cache_dir = dir.path().join("cache");
    let Some(_tmpfs) = Tmpfs::mount(&cache_dir, "3m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    };
    // Fill the small disk before the node starts (a short write is fine:
    // the point is that nothing is left).
    let _ = std::fs::write(cache_dir.join("ballast"), vec![0u8; 3 << 20]);
    assert!(
        std::fs::write(cache_dir.join("probe"), vec![0u8; 64 << 10]).is_err(),
        "the cache disk must be full for this test"
    );
    let mut silt = Silt::start(
        dir.path(),
        &[
            "--cache-dir",
            &cache_dir.display().to_string(),
            "--cache-disk-bytes",
            "67108864",
            "--cache-memory-bytes",
            "65536",
            "--segment-max-bytes",
            "262144",
            "--compression",
            "none",
        ],
    )
    .await;
    let client = Client::new(&silt);
    client.create_topic("c", 2).await;
    let mut expected: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    let produce = async |round: usize, expected: &mut Vec<Vec<String>>| {
        for r in 0..10 {
            let records: Vec<_> = (0..20)
                .map(|i| (i % 2, format!("{round}-{r}-{i}-{}", "x".repeat(2000))))
                .collect();
            let body = json!({"records": records.iter().map(|(p, v)| json!({"value": v, "partition": p})).collect::<Vec<_>>()});
            let reply = client.produce("c", body).await.expect("produce");
            assert_eq!(reply.status, 200, "{:?}", reply.body);
            for (p, v) in records {
                expected[p].push(v);
            }
        }
    };
    produce(0, &mut expected).await;
    produce(1, &mut expected).await;
    for p in 0..2u32 {
        let values: Vec<_> = client
            .read_all("c", p, "utf8")
            .await
            .iter()
            .map(|r| r["value"].as_str().expect("value").to_owned())
            .collect();
        assert_eq!(values, expected[p as usize], "partition {p}");
    }
    // Restarting on the broken disk still works.
    assert!(silt.terminate(std::time::Duration::from_secs(30)).await.success());
    silt.restart().await;
    let client = Client::new(&silt);
    for p in 0..2u32 {
        assert_eq!(client.read_all("c", p, "utf8").await.len(), expected[p as usize].len());
    }
    // The broken disk held nothing across the restart: the reads came from the object store.
    let gets = silt.metric("silt_object_store_requests_total{operation=\"get\"").await;
    assert!(gets > 0.0, "reads after the restart never reached the object store");
    let logs = silt.logs().join("\n");
    assert!(!logs.contains("panicked"), "{logs}");
}
