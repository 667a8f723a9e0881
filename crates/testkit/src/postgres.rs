//! A throwaway PostgreSQL cluster, or the one CI started.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::{Result, Unavailable, free_port, poll_until, unique_name};

/// Environment variable naming a server CI started; used instead of a throwaway cluster.
pub const POSTGRES_URL_ENV: &str = "SILT_TEST_POSTGRES_URL";

/// How long start-up (including crash recovery) may take.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long CI's server may take to answer: it should already be up.
const EXTERNAL_DEADLINE: Duration = Duration::from_secs(15);

/// A PostgreSQL server for tests: CI's (from `SILT_TEST_POSTGRES_URL`) or a
/// throwaway cluster in a temp dir on a free loopback port.
#[derive(Debug)]
pub struct PostgresServer {
    admin_url: String,
    local: Option<Local>,
}

/// A cluster this process started.
#[derive(Debug)]
struct Local {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// Stop and remove on drop (owned clusters; the shared one has a watchdog).
    owned: bool,
    /// Serialises stop/start.
    lifecycle: Mutex<()>,
    /// TLS on, with the certificate and key under `root/tls`.
    tls: bool,
}

static SHARED: OnceCell<Result<PostgresServer>> = OnceCell::const_new();

impl PostgresServer {
    /// The one server of this test process: CI's if `SILT_TEST_POSTGRES_URL`
    /// is set, else a throwaway cluster started on first use and stopped
    /// when the process exits.
    pub async fn shared() -> Result<&'static PostgresServer> {
        SHARED
            .get_or_init(|| async {
                match std::env::var(POSTGRES_URL_ENV) {
                    Ok(url) if !url.is_empty() => {
                        let server = PostgresServer {
                            admin_url: url,
                            local: None,
                        };
                        server.wait_ready(EXTERNAL_DEADLINE).await?;
                        Ok(server)
                    }
                    _ => Self::start_local(false, false).await,
                }
            })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A new throwaway cluster owned by the caller (stopped and removed on
    /// drop), whatever the environment says; for restart tests.
    pub async fn start_new() -> Result<PostgresServer> {
        Self::start_local(true, false).await
    }

    /// A new throwaway cluster that speaks TLS, owned by the caller: a fresh
    /// CA signs a certificate for `127.0.0.1` and `localhost`. The
    /// `postgres` role may still connect without TLS (the admin URL); every
    /// other role must use TLS. It also listens on `127.0.0.2`, which the
    /// certificate does not name. Returns the server and the CA's PEM file.
    pub async fn start_new_tls() -> Result<(PostgresServer, PathBuf)> {
        let server = Self::start_local(true, true).await?;
        let ca = server.require_local()?.root.join("tls").join("ca.pem");
        Ok((server, ca))
    }

    /// URL of the `postgres` database, for administrative connections.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The TCP port of a cluster this process started; `None` for CI's server.
    pub fn port(&self) -> Option<u16> {
        self.local.as_ref().map(|l| l.port)
    }

    /// Creates a new, uniquely named, empty database and returns its URL.
    pub async fn fresh_database(&self) -> Result<String> {
        let name = unique_name("silt_test_");
        let client = connect(&self.admin_url).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| Unavailable(format!("create database {name}: {e}")))?;
        Ok(with_database(&self.admin_url, &name))
    }

    /// Runs SQL statements as the admin user (roles, grants, settings a test needs).
    pub async fn execute(&self, sql: &str) -> Result<()> {
        connect(&self.admin_url)
            .await?
            .batch_execute(sql)
            .await
            .map_err(|e| Unavailable(format!("{sql}: {e}")))
    }

    /// Stops the cluster (fast shutdown: connections are dropped); only for clusters this process started.
    pub async fn stop(&self) -> Result<()> {
        let local = self.require_local()?;
        let _guard = local
            .lifecycle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        local.pg_ctl_stop("fast")
    }

    /// Starts a stopped cluster again on the same port and data directory and waits until it accepts connections.
    pub async fn start(&self) -> Result<()> {
        let local = self.require_local()?;
        {
            let _guard = local
                .lifecycle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            local.pg_ctl_start()?;
        }
        self.wait_ready(START_DEADLINE).await
    }

    fn require_local(&self) -> Result<&Local> {
        self.local
            .as_ref()
            .ok_or_else(|| Unavailable("the server from SILT_TEST_POSTGRES_URL cannot be stopped or started".into()))
    }

    async fn wait_ready(&self, deadline: Duration) -> Result<()> {
        let url = self.admin_url.clone();
        poll_until("PostgreSQL", deadline, Duration::from_millis(50), || {
            let url = url.clone();
            async move {
                let client = connect(&url).await.map_err(|e| e.0)?;
                client.simple_query("SELECT 1").await.map_err(|e| e.to_string())?;
                Ok(())
            }
        })
        .await
    }

    async fn start_local(owned: bool, tls: bool) -> Result<PostgresServer> {
        let bin = find_bin_dir().ok_or_else(|| {
            Unavailable("PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql/*/bin)".into())
        })?;
        let as_postgres_user = running_as_root();
        let root = std::env::temp_dir().join(unique_name("silt-testkit-pg-"));
        std::fs::create_dir_all(&root).map_err(|e| Unavailable(format!("create {}: {e}", root.display())))?;
        let mut local = Local {
            bin,
            root,
            port: 0,
            as_postgres_user,
            owned,
            lifecycle: Mutex::new(()),
            tls,
        };
        if as_postgres_user {
            local.run(Command::new("chown").arg("postgres:").arg(&local.root), "chown")?;
        }
        let data = local.data_dir();
        let mut initdb = local.pg_command("initdb");
        local.run(
            initdb.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]),
            "initdb",
        )?;
        if tls {
            local.make_tls_files()?;
        }
        // A port can be taken between choosing and binding it: try a few.
        let mut last = None;
        for _ in 0..3 {
            local.port = free_port()?;
            match local.pg_ctl_start() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        if !owned {
            local.spawn_watchdog();
        }
        let server = PostgresServer {
            admin_url: format!("postgres://postgres@127.0.0.1:{}/postgres", local.port),
            local: Some(local),
        };
        server.wait_ready(START_DEADLINE).await?;
        Ok(server)
    }
}

impl Local {
    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, cmd: &mut Command, what: &str) -> Result<()> {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Unavailable(format!("{what}: {e}")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Unavailable(format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            self.root.display()
        );
        if self.tls {
            // Also on 127.0.0.2, a loopback address the certificate does not name.
            let dir = self.root.join("tls");
            options = options.replace("listen_addresses=127.0.0.1", "listen_addresses=127.0.0.1,127.0.0.2");
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
        }
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.root.join("log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]);
        self.run(&mut cmd, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.root.join("log")).unwrap_or_default();
            Unavailable(format!("{e}; server log: {log}"))
        })
    }

    /// A CA, a server certificate it signs (for 127.0.0.1 and localhost),
    /// and a pg_hba.conf that lets only `postgres` in without TLS.
    fn make_tls_files(&self) -> Result<()> {
        let dir = self.root.join("tls");
        std::fs::create_dir_all(&dir).map_err(|e| Unavailable(format!("create {}: {e}", dir.display())))?;
        let openssl = |args: &[&str], what: &str| {
            let mut cmd = Command::new("openssl");
            cmd.current_dir(&dir).args(args);
            self.run(&mut cmd, what)
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=silt-testkit-ca",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
            "openssl (CA)",
        )?;
        openssl(
            &[
                &["req"][..],
                &ec,
                &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
            ]
            .concat(),
            "openssl (server key)",
        )?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| Unavailable(format!("write server.ext: {e}")))?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            "openssl (server certificate)",
        )?;
        // PostgreSQL refuses a key others can read.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Unavailable(format!("chmod server.key: {e}")))?;
        std::fs::write(
            self.data_dir().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.0/8 trust\n\
             host all postgres 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 reject\n",
        )
        .map_err(|e| Unavailable(format!("write pg_hba.conf: {e}")))?;
        if self.as_postgres_user {
            self.run(Command::new("chown").arg("-R").arg("postgres:").arg(&dir), "chown tls")?;
        }
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<()> {
        let mut cmd = self.pg_command("pg_ctl");
        cmd.arg("-D")
            .arg(self.data_dir())
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        self.run(&mut cmd, "pg_ctl stop")
    }

    /// A detached shell that stops the cluster and removes its files once this process has exited.
    fn spawn_watchdog(&self) {
        let pg_ctl = self.pg_command("pg_ctl");
        let mut stop: Vec<String> = vec![pg_ctl.get_program().to_string_lossy().into_owned()];
        stop.extend(pg_ctl.get_args().map(|a| a.to_string_lossy().into_owned()));
        let script = r#"root=$1; pid=$2; shift 2; tail --pid="$pid" -f /dev/null; "$@"; rm -rf "$root""#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("silt-testkit-pg-watchdog")
            .arg(&self.root)
            .arg(std::process::id().to_string())
            .args(&stop[..])
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "stop"]);
        let spawned = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("silt-testkit: no watchdog for {}: {e}", self.root.display());
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.pg_ctl_stop("immediate");
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Opens a connection whose driver task runs on the current runtime.
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| Unavailable(format!("connect {url}: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// `url` with its database replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|d| complete(d)) {
        return Some(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| complete(d))
        .collect();
    versions.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// PostgreSQL refuses to run as root; `/proc/self` is owned by our effective uid.
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_database_in_url() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "x"), "postgres://u@h:5/x");
        assert_eq!(with_database("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "x"),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
    }

    #[tokio::test]
    async fn fresh_databases_are_distinct_and_usable() {
        let server = crate::require!(PostgresServer::shared().await);
        let a = server.fresh_database().await.expect("fresh a");
        let b = server.fresh_database().await.expect("fresh b");
        assert_ne!(a, b);
        let client = connect(&a).await.expect("connect a");
        client
            .batch_execute("CREATE TABLE t (x INT); INSERT INTO t VALUES (1)")
            .await
            .expect("use a");
        let client = connect(&b).await.expect("connect b");
        let rows = client
            .query("SELECT count(*) FROM pg_tables WHERE tablename = 't'", &[])
            .await
            .expect("query b");
        assert_eq!(rows[0].get::<_, i64>(0), 0);
    }

    #[tokio::test]
    async fn owned_cluster_restarts_on_same_port() {
        if std::env::var(POSTGRES_URL_ENV).is_ok_and(|v| !v.is_empty()) && find_bin_dir().is_none() {
            crate::skip(&"no local PostgreSQL binaries for an owned cluster");
            return;
        }
        let server = crate::require!(PostgresServer::start_new().await);
        let port = server.port();
        let url = server.fresh_database().await.expect("fresh");
        connect(&url)
            .await
            .expect("connect")
            .batch_execute("CREATE TABLE kept (x INT); INSERT INTO kept VALUES (7)")
            .await
            .expect("write");
        server.stop().await.expect("stop");
        assert!(connect(&url).await.is_err(), "stopped server still answers");
        server.start().await.expect("start");
        assert_eq!(server.port(), port);
        let rows = connect(&url)
            .await
            .expect("reconnect")
            .query("SELECT x FROM kept", &[])
            .await
            .expect("read");
        assert_eq!(rows[0].get::<_, i32>(0), 7);
    }
}
