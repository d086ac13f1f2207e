//! TLS backends for tests: a throwaway certificate authority, a scratch PostgreSQL
//! cluster that accepts only TLS, a Redis that listens only on a TLS port, and a TLS
//! front for a second tansu broker (tansu speaks plain TCP; the front terminates TLS
//! and the broker advertises the front's address, so every Kafka connection is TLS).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A directory that is removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    pub fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "registrar-{what}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        Self(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate authority whose key lives only in this process.
pub struct TestCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    pub dir: ScratchDir,
    /// The CA certificate, PEM: what clients are told to trust.
    pub ca_file: PathBuf,
}

/// A server certificate and its key, PEM files.
pub struct Issued {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("Registrar test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = ScratchDir::new(&format!("ca-{name}"));
        let ca_file = dir.0.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("write CA");
        Self {
            key,
            cert,
            dir,
            ca_file,
        }
    }

    /// Issues a server certificate for the DNS names and IP addresses given.
    pub fn issue(&self, file_stem: &str, names: &[&str]) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, names[0]);
        for name in names {
            params.subject_alt_names.push(match name.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*name).try_into().expect("DNS name")),
            });
        }
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let issued = Issued {
            cert_file: self.dir.0.join(format!("{file_stem}.crt")),
            key_file: self.dir.0.join(format!("{file_stem}.key")),
        };
        std::fs::write(&issued.cert_file, cert.pem()).expect("write certificate");
        std::fs::write(&issued.key_file, key.serialize_pem()).expect("write key");
        issued
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 30 s");
}

/// A child process killed (and reaped) when dropped.
pub struct Running {
    pub child: Child,
    pub port: u16,
    _dir: Option<ScratchDir>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory of the newest installed PostgreSQL server binaries.
fn postgres_bindir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").exists());
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Runs a PostgreSQL server binary as the `postgres` user when we are root (initdb
/// and postgres refuse to run as root).
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A fresh PostgreSQL cluster on a free port that accepts only TLS connections
/// (`hostssl` entries only), trusting the `postgres` role, serving `server`.
pub fn postgres_with_tls(server: &Issued) -> Running {
    let scratch = ScratchDir::new("pg-tls");
    let data = scratch.0.join("data");
    let bin = postgres_bindir();
    std::fs::copy(&server.cert_file, scratch.0.join("server.crt")).expect("copy certificate");
    std::fs::copy(&server.key_file, scratch.0.join("server.key")).expect("copy key");
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&scratch.0)
            .status()
            .expect("chown");
        assert!(status.success(), "chown the scratch cluster to postgres");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        scratch.0.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("key permissions");
    let out = as_postgres(&bin.join("initdb"))
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        data.join("pg_hba.conf"),
        "hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .expect("write pg_hba.conf");
    let port = free_port();
    let mut child = as_postgres(&bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&scratch.0)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "ssl=on",
            "-c",
            "fsync=off",
        ])
        .arg("-c")
        .arg(format!(
            "ssl_cert_file={}",
            scratch.0.join("server.crt").display()
        ))
        .arg("-c")
        .arg(format!(
            "ssl_key_file={}",
            scratch.0.join("server.key").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start postgres");
    wait_for_port(port, "scratch PostgreSQL", &mut child);
    // The port opens before the server accepts sessions ("the database system is
    // starting up"): wait until pg_isready says it does.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "scratch PostgreSQL did not accept sessions within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Running {
        child,
        port,
        _dir: Some(scratch),
    }
}

/// A Redis server that listens only on a TLS port (no plain port), serving `server`,
/// not asking clients for certificates.
pub fn redis_with_tls(ca: &TestCa, server: &Issued) -> Running {
    let scratch = ScratchDir::new("redis-tls");
    let port = free_port();
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .arg("--tls-cert-file")
        .arg(&server.cert_file)
        .arg("--tls-key-file")
        .arg(&server.key_file)
        .arg("--tls-ca-cert-file")
        .arg(&ca.ca_file)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&scratch.0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    wait_for_port(port, "TLS Redis", &mut child);
    Running {
        child,
        port,
        _dir: Some(scratch),
    }
}

/// The tansu binary `scripts/services.sh` installed.
pub fn tansu_binary() -> PathBuf {
    if let Ok(path) = std::env::var("TANSU") {
        return PathBuf::from(path);
    }
    let cache = std::env::var("REGISTRAR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/registrar")
        });
    cache.join("tansu/bin/tansu")
}

/// A second tansu broker (sqlite storage in a scratch directory) whose only advertised
/// address is a TLS front: the returned port speaks TLS with `server`'s certificate
/// and forwards to the broker's plain port on 127.0.0.1, which clients never learn.
pub async fn kafka_with_tls(server: &Issued) -> (Running, tokio::task::JoinHandle<()>) {
    let scratch = ScratchDir::new("tansu-tls");
    let (broker_port, front_port) = (free_port(), free_port());
    let mut child = Command::new(tansu_binary())
        .current_dir(&scratch.0)
        .arg("broker")
        .arg("--listener-url")
        .arg(format!("tcp://127.0.0.1:{broker_port}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{front_port}"))
        .args(["--storage-engine", "sqlite://tansu.db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    wait_for_port(broker_port, "tansu", &mut child);
    let front = tls_front(server, front_port, ([127, 0, 0, 1], broker_port).into()).await;
    (
        Running {
            child,
            port: front_port,
            _dir: Some(scratch),
        },
        front,
    )
}

/// Terminates TLS on `port` and relays each connection to `upstream`.
async fn tls_front(
    server: &Issued,
    port: u16,
    upstream: SocketAddr,
) -> tokio::task::JoinHandle<()> {
    common::store::tls::install_crypto_provider();
    let certs = CertificateDer::pem_file_iter(&server.cert_file)
        .expect("read certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse certificate");
    let key = PrivateKeyDer::from_pem_file(&server.key_file).expect("read key");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind TLS front");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    })
}
