//! Static checks of the deployment files (no Docker or cluster here): every YAML file
//! parses; probe paths and ports match what the binaries serve; the dashboard queries
//! only exported metrics; every environment variable set is one the configuration reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::Value as Yaml;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn files_under(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if exts.iter().any(|e| p.extension().is_some_and(|x| x == *e)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn documents(text: &str) -> Vec<Yaml> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// Environment variable names the binaries read: every setting of their clap
/// definitions (what `config-reference` prints).
fn config_env_names() -> BTreeSet<String> {
    registrar_api::config::settings()
        .into_iter()
        .chain(registrar_consumer::config::settings())
        .map(|s| s.env)
        .collect()
}

fn exported_metric_names() -> BTreeSet<String> {
    [
        "api/src/metrics.rs",
        "consumer/src/metrics.rs",
        "consumer/src/mailer/config.rs",
        "consumer/src/relay.rs",
        "consumer/src/webhooks/mod.rs",
        "common/src/ops/metrics.rs",
    ]
    .iter()
    .flat_map(|f| {
        read(f)
            .split('"')
            .filter(|s| s.starts_with("registrar_") && !s.contains(' '))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    })
    .collect()
}

/// Paths the api router and the consumer probe server serve.
fn served_paths() -> BTreeSet<String> {
    ["api/src/startup.rs", "consumer/src/server.rs"]
        .iter()
        .flat_map(|f| {
            read(f)
                .split(".route(\"")
                .skip(1)
                .filter_map(|s| s.split('"').next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_yaml_file_parses() {
    let mut files = files_under("k8s", &["yaml", "yml"]);
    files.extend(files_under("deploy", &["yaml", "yml"]));
    files.push(root().join("docker-compose.yml"));
    files.push(root().join("helm/registrar/Chart.yaml"));
    files.push(root().join("helm/registrar/values.yaml"));
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!documents(&text).is_empty(), "{}", f.display());
    }
    assert!(files.len() >= 12, "{files:?}");
    serde_json::from_str::<serde_json::Value>(&read("deploy/grafana/dashboards/registrar.json"))
        .unwrap();
}

fn containers(docs: &[Yaml]) -> Vec<Yaml> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment")
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn kubernetes_probes_use_paths_and_ports_the_binaries_serve() {
    let served = served_paths();
    for (file, port) in [("k8s/api.yaml", 8000), ("k8s/consumer.yaml", 8001)] {
        let docs = documents(&read(file));
        let cs = containers(&docs);
        assert_eq!(cs.len(), 1, "{file}");
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = &cs[0][probe]["httpGet"];
            let path = get["path"].as_str().unwrap();
            assert!(served.contains(path), "{file} {probe} {path} is not served");
            assert_eq!(get["port"].as_u64(), Some(port), "{file} {probe}");
        }
        assert_eq!(cs[0]["ports"][0]["containerPort"].as_u64(), Some(port));
    }
    let config = documents(&read("k8s/configmap.yaml"));
    assert_eq!(config[0]["data"]["PORT"], "8000");
    assert_eq!(config[0]["data"]["CONSUMER_PORT"], "8001");
}

#[test]
fn helm_templates_probe_served_paths_on_the_configured_ports() {
    let served = served_paths();
    let values = documents(&read("helm/registrar/values.yaml")).remove(0);
    assert_eq!(values["api"]["port"].as_u64(), Some(8000));
    assert_eq!(values["consumer"]["port"].as_u64(), Some(8001));
    for (file, component) in [
        ("helm/registrar/templates/api.yaml", "api"),
        ("helm/registrar/templates/consumer.yaml", "consumer"),
    ] {
        let text = read(file);
        let paths: Vec<&str> = text
            .split("httpGet: {path: ")
            .skip(1)
            .filter_map(|s| s.split(',').next())
            .collect();
        assert_eq!(paths.len(), 2, "{file}");
        for p in paths {
            assert!(served.contains(p), "{file}: {p} is not served");
        }
        assert!(
            text.contains(&format!("port: {{{{ .Values.{component}.port }}}}")),
            "{file}"
        );
    }
}

#[test]
fn compose_healthchecks_use_served_paths_and_ports() {
    let served = served_paths();
    let compose = documents(&read("docker-compose.yml")).remove(0);
    for (service, port) in [("api", "8000"), ("consumer", "8001")] {
        let test: Vec<String> = compose["services"][service]["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let url = test.iter().find(|t| t.starts_with("http://")).unwrap();
        let rest = url.trim_start_matches("http://127.0.0.1:");
        let (p, path) = rest.split_once('/').unwrap();
        assert_eq!(p, port, "{service}");
        assert!(served.contains(&format!("/{path}")), "{service}: /{path}");
    }
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("USER 10001"),
        "the image runs as non-root"
    );
    assert!(dockerfile.contains("HEALTHCHECK"));
}

#[test]
fn the_image_builds_every_workspace_member_and_links_openssl() {
    let dockerfile = read("Dockerfile");
    let workspace: toml_like::Members = toml_like::members(&read("Cargo.toml"));
    for member in workspace {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "the dependency layer copies {member}/Cargo.toml, or cargo cannot load the workspace"
        );
    }
    // librdkafka is built with OpenSSL (Kafka TLS/SASL): headers to build, library to run.
    assert!(dockerfile.contains("libssl-dev"));
    assert!(dockerfile.contains("libssl3"));
}

/// The `members = [...]` list of the workspace manifest.
mod toml_like {
    pub type Members = Vec<String>;
    pub fn members(manifest: &str) -> Members {
        let list = manifest
            .split("members = [")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("workspace members");
        list.split(',')
            .map(|m| m.trim().trim_matches('"').to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }
}

#[test]
fn the_dashboard_queries_only_metrics_the_code_exports() {
    let exported = exported_metric_names();
    assert!(exported.contains("registrar_consumer_lag"));
    let dashboard = read("deploy/grafana/dashboards/registrar.json");
    let mut queried = metric_names_in(&dashboard);
    // The dashboard uid and title are not metrics.
    queried.remove("registrar_");
    assert!(queried.len() >= 8, "{queried:?}");
    for q in &queried {
        assert!(
            exported.contains(q),
            "dashboard queries {q}, which is not exported"
        );
    }
}

#[test]
fn every_environment_variable_in_the_deployment_files_is_read_by_the_configuration() {
    let known = config_env_names();
    assert!(known.contains("DATABASE_URL") && known.contains("SEAL_PRIVATE_KEYS"));
    let mut used: BTreeSet<String> = BTreeSet::new();
    let configmap = documents(&read("k8s/configmap.yaml")).remove(0);
    let secret = documents(&read("k8s/secret.example.yaml")).remove(0);
    for map in [&configmap["data"], &secret["stringData"]] {
        used.extend(
            map.as_mapping()
                .unwrap()
                .keys()
                .filter_map(|k| k.as_str().map(str::to_owned)),
        );
    }
    let compose = documents(&read("docker-compose.yml")).remove(0);
    for service in ["api", "consumer", "migrate"] {
        if let Some(env) = compose["services"][service]["environment"].as_mapping() {
            used.extend(
                env.keys()
                    .filter_map(|k| k.as_str())
                    .filter(|k| *k != "<<")
                    .map(str::to_owned),
            );
        }
    }
    used.extend(
        compose["x-registrar-env"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned)),
    );
    let values = documents(&read("helm/registrar/values.yaml")).remove(0);
    for section in ["config", "secrets", "optionalSecrets"] {
        used.extend(
            values[section]
                .as_mapping()
                .unwrap()
                .keys()
                .filter_map(|k| k.as_str().map(str::to_owned)),
        );
    }
    let helm_configmap = read("helm/registrar/templates/configmap.yaml");
    used.extend(
        helm_configmap
            .lines()
            .filter_map(|l| l.trim().split_once(": {{"))
            .map(|(k, _)| k.to_owned())
            .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_')),
    );
    used.extend(
        read(".env.example")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k.to_owned()),
    );
    assert!(used.len() >= 15, "{used:?}");
    for name in &used {
        assert!(
            known.contains(name),
            "{name} is set in a deployment file but never read"
        );
    }
}

#[test]
fn helm_and_kubernetes_trust_the_ingress_so_clients_keep_their_own_address() {
    let helm: Yaml = serde_norway::from_str(&read("helm/registrar/values.yaml")).unwrap();
    let k8s = documents(&read("k8s/configmap.yaml"));
    let values = [
        helm["config"]["TRUSTED_PROXIES"]
            .as_str()
            .map(str::to_owned),
        k8s.iter()
            .find_map(|d| d["data"]["TRUSTED_PROXIES"].as_str().map(str::to_owned)),
    ];
    for value in values {
        let value = value.expect("TRUSTED_PROXIES is set");
        let nets = registrar_api::protection::parse_trusted_proxies(&value).unwrap();
        assert!(
            !nets.is_empty(),
            "an empty list makes every client the ingress"
        );
        let pod: std::net::IpAddr = "10.244.1.17".parse().unwrap();
        assert!(nets.iter().any(|n| n.contains(&pod)), "{value}");
    }
}

#[test]
fn the_local_broker_keeps_its_storage_outside_the_checkout() {
    // One broker listens on 127.0.0.1:9092 per machine. When its storage lived in the
    // checkout, a broker restart from another checkout (a CI clone) came back on an
    // empty log directory and acknowledged records were gone.
    let services = read("scripts/services.sh");
    let default = services
        .lines()
        .find_map(|l| l.trim().strip_prefix("KAFKA_DATA="))
        .expect("services.sh sets KAFKA_DATA");
    assert!(
        default.contains("$CACHE") && !default.contains("$ROOT") && !default.contains("$DATA"),
        "KAFKA_DATA must default to the machine-wide cache, not the checkout: {default}"
    );
    assert!(services.contains(r#"echo "log.dirs=$KAFKA_DATA/logs""#));
    assert!(services.contains(r#"local signal="${1:-TERM}" pidfile="$KAFKA_DATA/kafka.pid""#));
}

#[test]
fn the_local_broker_is_apache_kafka_from_maven_central_with_a_bounded_heap() {
    let pom = read("scripts/kafka/pom.xml");
    assert!(pom.contains("<artifactId>kafka_2.13</artifactId>"), "{pom}");
    let services = read("scripts/services.sh");
    assert!(services.contains("dependency:copy-dependencies"));
    assert!(services.contains("kafka.tools.StorageTool format --standalone"));
    assert!(services.contains("kafka.Kafka \"$KAFKA_DATA/server.properties\""));
    let heap = services
        .lines()
        .find_map(|l| l.trim().strip_prefix("KAFKA_HEAP_OPTS="))
        .expect("services.sh sets KAFKA_HEAP_OPTS");
    assert!(heap.contains("-Xmx512m"), "{heap}");
    let properties = read("scripts/kafka/server.properties");
    for line in [
        "process.roles=broker,controller",
        "auto.create.topics.enable=false",
    ] {
        assert!(properties.lines().any(|l| l == line), "missing {line}");
    }
}

/// Metric names (`registrar_*`, `process_*`) an expression or document mentions, without
/// the histogram suffixes.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["registrar_", "process_"] {
        for piece in text.split(prefix).skip(1) {
            let rest: String = piece
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            let name = format!("{prefix}{rest}");
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name)
                .to_owned();
            names.insert(base);
        }
    }
    names
}

#[test]
fn the_alerting_rules_ship_identically_to_prometheus_kubernetes_and_helm() {
    let alerts = documents(&read("deploy/prometheus/alerts.yml"));
    let groups = &alerts[0]["groups"];
    assert!(groups[0]["rules"].as_sequence().unwrap().len() >= 6);
    let k8s = documents(&read("k8s/prometheusrule.yaml"));
    assert_eq!(k8s[0]["kind"], "PrometheusRule");
    assert_eq!(&k8s[0]["spec"]["groups"], groups, "k8s/prometheusrule.yaml");
    assert_eq!(
        read("helm/registrar/files/alerts.yml"),
        read("deploy/prometheus/alerts.yml"),
        "the chart's copy of the rules"
    );
    let template = read("helm/registrar/templates/prometheusrule.yaml");
    assert!(template.contains(".Files.Get \"files/alerts.yml\""));
    assert!(read("deploy/prometheus/prometheus.yml").contains("alerts.yml"));
}

#[test]
fn the_alerting_rules_read_only_metrics_the_code_exports() {
    let exported = exported_metric_names();
    let alerts = documents(&read("deploy/prometheus/alerts.yml"));
    let mut read_by_rules = BTreeSet::new();
    for rule in alerts[0]["groups"][0]["rules"].as_sequence().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        read_by_rules.extend(metric_names_in(expr));
    }
    assert!(read_by_rules.len() >= 6, "{read_by_rules:?}");
    for name in read_by_rules {
        assert!(
            exported.contains(&name),
            "an alert reads {name}, which is not exported"
        );
    }
}

#[test]
fn every_deploy_file_requires_a_verified_email_before_login() {
    // Without it, someone can register a victim's address before the victim does and
    // keep the account when the victim later resets the password.
    for path in [
        "docker-compose.yml",
        "k8s/configmap.yaml",
        "helm/registrar/values.yaml",
    ] {
        let text = read(path);
        assert!(
            text.lines()
                .any(|l| l.trim() == r#"REQUIRE_VERIFIED_EMAIL: "true""#),
            "{path} must set REQUIRE_VERIFIED_EMAIL to true"
        );
    }
}

/// `(principal, operation, resource type, name, pattern)` of `deploy/kafka/acls.tsv`.
fn granted_acls() -> BTreeSet<(String, String, String, String, String)> {
    read("deploy/kafka/acls.tsv")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .flat_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 5, "acls.tsv: {l}");
            f[1].split(',')
                .map(|op| {
                    (
                        f[0].to_owned(),
                        op.to_owned(),
                        f[2].to_owned(),
                        f[3].to_owned(),
                        f[4].to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn kafka_acls_let_only_the_api_and_the_operators_replay_write_registrations() {
    let acls = granted_acls();
    let writers: BTreeSet<&str> = acls
        .iter()
        .filter(|(_, op, kind, name, _)| {
            kind == "topic"
                && name == "user-registration"
                && ["Write", "All"].contains(&op.as_str())
        })
        .map(|(principal, ..)| principal.as_str())
        .collect();
    assert_eq!(
        writers,
        BTreeSet::from(["registrar-api", "registrar-operator"])
    );
    // The Strimzi KafkaUsers of k8s/ grant the same, with SCRAM credentials.
    let mut strimzi = BTreeSet::new();
    for doc in documents(&read("k8s/kafka-users.yaml")) {
        let principal = doc["metadata"]["name"].as_str().unwrap().to_owned();
        assert_eq!(doc["spec"]["authentication"]["type"], "scram-sha-512");
        for acl in doc["spec"]["authorization"]["acls"].as_sequence().unwrap() {
            let r = &acl["resource"];
            let pattern = match r["patternType"].as_str().unwrap() {
                "prefix" => "prefixed",
                other => other,
            };
            for op in acl["operations"].as_sequence().unwrap() {
                strimzi.insert((
                    principal.clone(),
                    op.as_str().unwrap().to_owned(),
                    r["type"].as_str().unwrap().to_owned(),
                    r["name"].as_str().unwrap().to_owned(),
                    pattern.to_owned(),
                ));
            }
        }
    }
    assert_eq!(
        strimzi, acls,
        "k8s/kafka-users.yaml differs from deploy/kafka/acls.tsv"
    );
}

#[test]
fn deploy_files_default_to_authenticated_kafka_and_verified_database_tls() {
    // docker-compose: SCRAM principals, one per binary, passwords only from .env.
    let compose = &documents(&read("docker-compose.yml"))[0];
    for (service, principal, password) in [
        ("api", "registrar-api", "KAFKA_API_PASSWORD"),
        ("consumer", "registrar-consumer", "KAFKA_CONSUMER_PASSWORD"),
    ] {
        let env = &compose["services"][service]["environment"];
        // (The shared settings come in through the `x-registrar-env` anchor.)
        let shared = &compose["x-registrar-env"];
        assert_eq!(shared["KAFKA_SECURITY_PROTOCOL"], "sasl_plaintext");
        assert_eq!(shared["KAFKA_SASL_MECHANISM"], "SCRAM-SHA-512");
        assert_eq!(env["KAFKA_SASL_USERNAME"], principal, "{service}");
        let pw = env["KAFKA_SASL_PASSWORD"].as_str().unwrap();
        assert!(
            pw.starts_with(&format!("${{{password}:?")),
            "{service}: {pw} must come from .env, with no default"
        );
    }
    assert_eq!(
        compose["services"]["kafka"]["entrypoint"][1],
        "/etc/registrar/kafka/start.sh"
    );
    // Kubernetes: TLS and SCRAM, each Deployment as its own principal.
    let configmap = &documents(&read("k8s/configmap.yaml"))[0]["data"];
    assert_eq!(configmap["KAFKA_SECURITY_PROTOCOL"], "sasl_ssl");
    assert_eq!(configmap["KAFKA_SASL_MECHANISM"], "SCRAM-SHA-512");
    assert!(configmap["KAFKA_SSL_CA_LOCATION"].as_str().is_some());
    for (file, principal) in [
        ("k8s/api.yaml", "registrar-api"),
        ("k8s/consumer.yaml", "registrar-consumer"),
    ] {
        let containers = containers(&documents(&read(file)));
        let env = containers[0]["env"].as_sequence().unwrap();
        let user = env
            .iter()
            .find(|e| e["name"] == "KAFKA_SASL_USERNAME")
            .unwrap_or_else(|| panic!("{file}: no KAFKA_SASL_USERNAME"));
        assert_eq!(user["value"], principal, "{file}");
        let password = env
            .iter()
            .find(|e| e["name"] == "KAFKA_SASL_PASSWORD")
            .unwrap_or_else(|| panic!("{file}: no KAFKA_SASL_PASSWORD"));
        assert_eq!(
            password["valueFrom"]["secretKeyRef"]["name"], principal,
            "{file}"
        );
    }
    let secret = &documents(&read("k8s/secret.example.yaml"))[0]["stringData"];
    assert!(secret["DATABASE_URL"]
        .as_str()
        .unwrap()
        .contains("sslmode=verify-full"));
    // Helm: the same defaults (the chart refuses weaker ones: `make deploy-check`).
    let values = &documents(&read("helm/registrar/values.yaml"))[0];
    assert_eq!(values["kafka"]["securityProtocol"], "sasl_ssl");
    assert_eq!(values["kafka"]["allowUnauthenticated"], false);
    assert_eq!(values["kafka"]["sasl"]["mechanism"], "SCRAM-SHA-512");
    assert_eq!(values["kafka"]["strimziUsers"]["enabled"], true);
    assert_eq!(values["tls"]["allowUnverifiedDatabase"], false);
}
