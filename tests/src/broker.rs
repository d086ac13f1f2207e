//! A scratch Apache Kafka node for tests that need a broker of their own (a TLS-only or
//! SASL listener, say): one KRaft process, broker and controller, on free ports, with its
//! storage in a scratch directory. It runs from the jars `scripts/services.sh` resolved
//! from Maven Central into `~/.cache/registrar/kafka`, exactly like the shared broker.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine;

use crate::tls::{free_port, wait_for_port, Running, ScratchDir};

/// The classpath of the Kafka version `scripts/services.sh` resolved.
pub fn kafka_classpath() -> String {
    let cache = std::env::var("REGISTRAR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
                .join(".cache/registrar")
        })
        .join("kafka");
    let version = std::fs::read_to_string(cache.join("current")).unwrap_or_else(|e| {
        panic!("Kafka's jars are not resolved ({e}): run scripts/services.sh up (make test does)")
    });
    format!("{}/*", cache.join(version.trim()).join("libs").display())
}

fn java(dir: &std::path::Path, class: &str) -> Command {
    let mut cmd = Command::new("java");
    cmd.arg("-Xmx384m")
        .arg("-cp")
        .arg(kafka_classpath())
        .arg(format!(
            "-Dlog4j2.configurationFile={}/../scripts/kafka/log4j2.properties",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("-Dkafka.log.file={}/kafka.log", dir.display()))
        .arg(class)
        .current_dir(dir);
    cmd
}

/// Starts a single-node cluster. `listener` is the client listener's name and protocol
/// as it appears in `listeners` (`SSL`, `SASL_PLAINTEXT`...); `extra` is appended to the
/// properties (the listener's TLS or SASL settings). Returns the running process and the
/// client port; the node is killed and its storage removed when the value is dropped.
pub fn start_node(listener: &str, extra: &str) -> Running {
    let scratch = ScratchDir::new("kafka-node");
    let (port, controller) = (free_port(), free_port());
    let properties = format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
         listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
         advertised.listeners={listener}://127.0.0.1:{port}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name={listener}\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}\n\
         log.dirs={dir}/logs\n\
         offsets.topic.replication.factor=1\n\
         offsets.topic.num.partitions=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         num.network.threads=1\n\
         num.io.threads=2\n\
         {extra}\n",
        dir = scratch.0.display(),
    );
    let config = scratch.0.join("server.properties");
    std::fs::write(&config, properties).expect("write server.properties");
    let cluster_id =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let status = java(&scratch.0, "kafka.tools.StorageTool")
        // `=`: a base64url id may start with `-`, which would read as an option.
        .args([
            "format",
            "--standalone",
            &format!("--cluster-id={cluster_id}"),
            "-c",
        ])
        .arg(&config)
        .stdout(Stdio::null())
        .status()
        .expect("run Kafka's StorageTool");
    assert!(
        status.success(),
        "formatting the scratch broker's storage failed"
    );
    let mut child = java(&scratch.0, "kafka.Kafka")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kafka.Kafka");
    wait_for_port(port, "scratch Kafka node", &mut child);
    Running::new(child, port, Some(scratch))
}

/// The principals of `deploy/kafka/acls.tsv` and their SCRAM passwords on a
/// [`deploy_node`].
pub const DEPLOY_PRINCIPALS: [&str; 4] = [
    "admin",
    "registrar-api",
    "registrar-consumer",
    "registrar-operator",
];

/// A node started by the docker-compose broker's own scripts (`deploy/kafka/start.sh`,
/// then `deploy/kafka/setup.sh` for topics and ACLs), on free ports.
pub struct DeployNode {
    pub node: Running,
    pub brokers: String,
}

impl DeployNode {
    /// The test password of a principal of [`DEPLOY_PRINCIPALS`].
    pub fn password(principal: &str) -> String {
        format!("{}-test-password-0123", principal.replace('-', "_"))
    }
}

/// Runs the compose broker's start and setup scripts against the jars the shared broker
/// uses: `kafka-*.sh` are small shims over the same Java classes the distribution's
/// scripts call.
pub fn deploy_node() -> DeployNode {
    let scratch = ScratchDir::new("kafka-deploy");
    let bin = scratch.0.join("bin");
    std::fs::create_dir_all(&bin).expect("shim dir");
    let log4j = format!(
        "{}/../scripts/kafka/log4j2.properties",
        env!("CARGO_MANIFEST_DIR")
    );
    for (script, class) in [
        ("kafka-storage.sh", "kafka.tools.StorageTool"),
        ("kafka-server-start.sh", "kafka.Kafka"),
        ("kafka-topics.sh", "org.apache.kafka.tools.TopicCommand"),
        ("kafka-acls.sh", "org.apache.kafka.tools.AclCommand"),
    ] {
        let path = bin.join(script);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec java -Xmx384m -cp '{}' -Dlog4j2.configurationFile={log4j} \
                 -Dkafka.log.file={}/kafka.log {class} \"$@\"\n",
                kafka_classpath(),
                scratch.0.display()
            ),
        )
        .expect("write shim");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod shim");
    }
    let (port, controller) = (free_port(), free_port());
    let deploy = crate::root().join("deploy/kafka");
    let data = scratch.0.join("data");
    let env = |cmd: &mut Command| {
        cmd.env("KAFKA_BIN", &bin)
            .env("KAFKA_DATA", &data)
            .env("KAFKA_ADVERTISED_HOST", "127.0.0.1")
            .env("KAFKA_PORT", port.to_string())
            .env("KAFKA_CONTROLLER_PORT", controller.to_string())
            .env("KAFKA_BOOTSTRAP", format!("127.0.0.1:{port}"))
            .env("KAFKA_PARTITIONS", "2")
            .env(
                "KAFKA_CONTROLLER_PASSWORD",
                DeployNode::password("controller"),
            );
        for principal in DEPLOY_PRINCIPALS {
            let name = principal.trim_start_matches("registrar-").to_uppercase();
            cmd.env(
                format!("KAFKA_{name}_PASSWORD"),
                DeployNode::password(principal),
            );
        }
    };
    let mut start = Command::new("sh");
    start.arg(deploy.join("start.sh"));
    env(&mut start);
    let mut child = start
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run deploy/kafka/start.sh");
    wait_for_port(port, "deploy/kafka/start.sh's broker", &mut child);
    let node = Running::new(child, port, Some(scratch));
    let mut setup = Command::new("sh");
    setup.arg(deploy.join("setup.sh"));
    env(&mut setup);
    let output = setup.output().expect("run deploy/kafka/setup.sh");
    assert!(
        output.status.success(),
        "deploy/kafka/setup.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    DeployNode {
        node,
        brokers: format!("127.0.0.1:{port}"),
    }
}
