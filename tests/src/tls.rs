//! TLS backends for tests: a throwaway certificate authority, a scratch PostgreSQL
//! cluster that accepts only TLS, a Redis that listens only on a TLS port, and an Apache
//! Kafka node whose only client listener is TLS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType};

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

pub(crate) fn wait_for_port(port: u16, what: &str, child: &mut Child) {
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

impl Running {
    pub(crate) fn new(child: Child, port: u16, dir: Option<ScratchDir>) -> Self {
        Self {
            child,
            port,
            _dir: dir,
        }
    }
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

/// A scratch Apache Kafka node whose only client listener speaks TLS with `server`'s
/// certificate (PEM key store; no client certificates asked for). The node trusts `ca`
/// for its own inter-broker connections, which use the same listener.
pub fn kafka_with_tls(ca: &TestCa, server: &Issued) -> Running {
    let keystore = server.key_file.with_extension("keystore.pem");
    let pem = format!(
        "{}{}",
        std::fs::read_to_string(&server.key_file).expect("read key"),
        std::fs::read_to_string(&server.cert_file).expect("read certificate")
    );
    std::fs::write(&keystore, pem).expect("write key store");
    crate::broker::start_node(
        "SSL",
        &format!(
            "ssl.keystore.type=PEM\nssl.keystore.location={}\nssl.client.auth=none\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}",
            keystore.display(),
            ca.ca_file.display()
        ),
    )
}
