//! TLS to the backends: PostgreSQL by `sslmode`/`sslrootcert` in `DATABASE_URL`, Redis
//! by `rediss://` and `REDIS_TLS_CA_FILE`, Kafka by `KAFKA_SECURITY_PROTOCOL` and
//! `KAFKA_SSL_CA_LOCATION`, each against a real server that accepts nothing but TLS and
//! presents a certificate from a throwaway authority.

use std::time::Duration;

use common::config::{KafkaConfig, KafkaSecurityProtocol, PostgresConfig, RedisConfig};
use deadpool_redis::redis;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use registrar_tests::tls::{kafka_with_tls, postgres_with_tls, redis_with_tls, TestCa};
use secrecy::SecretString;

fn postgres(url: String) -> PostgresConfig {
    PostgresConfig {
        url: SecretString::from(url),
        pool_size: 2,
        timeout_ms: 5000,
    }
}

/// Whether the pool's session is encrypted, as the server sees it.
async fn session_is_encrypted(config: &PostgresConfig) -> anyhow::Result<bool> {
    let pool = common::store::postgres::pool(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn postgres_sslmode_verify_full_connects_over_tls_and_migrates() {
    let ca = TestCa::new("pg");
    let pg = postgres_with_tls(&ca.issue("pg", &["localhost"]));
    let config = postgres(format!(
        "postgres://postgres@localhost:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        pg.port,
        ca.ca_file.display()
    ));
    assert!(session_is_encrypted(&config).await.unwrap());
    let pool = common::store::postgres::pool(&config).unwrap();
    let applied = common::store::postgres::migrate(&pool).await.unwrap();
    assert!(!applied.is_empty(), "the schema is created over TLS");
}

#[tokio::test]
async fn postgres_verify_modes_refuse_what_they_must_and_require_encrypts() {
    let ca = TestCa::new("pg-modes");
    let stranger = TestCa::new("pg-stranger");
    // The certificate names "localhost" only; we connect to 127.0.0.1.
    let pg = postgres_with_tls(&ca.issue("pg", &["localhost"]));
    let url = |params: String| {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            pg.port
        )
    };
    let ca_file = ca.ca_file.display();

    let wrong_host = postgres(url(format!("sslmode=verify-full&sslrootcert={ca_file}")));
    assert!(
        session_is_encrypted(&wrong_host).await.is_err(),
        "verify-full refuses a certificate for another host name"
    );
    let other_authority = postgres(url(format!(
        "sslmode=verify-ca&sslrootcert={}",
        stranger.ca_file.display()
    )));
    assert!(
        session_is_encrypted(&other_authority).await.is_err(),
        "verify-ca refuses a certificate from an authority it does not trust"
    );
    let chain_only = postgres(url(format!("sslmode=verify-ca&sslrootcert={ca_file}")));
    assert!(session_is_encrypted(&chain_only).await.unwrap());
    let require = postgres(url("sslmode=require".into()));
    assert!(
        session_is_encrypted(&require).await.unwrap(),
        "require encrypts without a root certificate, as libpq does"
    );
    let plain = postgres(url("sslmode=disable".into()));
    assert!(
        session_is_encrypted(&plain).await.is_err(),
        "the scratch server accepts nothing but TLS"
    );
}

fn redis(url: String, ca: Option<std::path::PathBuf>) -> RedisConfig {
    RedisConfig {
        url: SecretString::from(url),
        pool_size: 2,
        timeout_ms: 3000,
        tls_ca_file: ca,
        key_prefix: "tls-test:".into(),
    }
}

#[tokio::test]
async fn redis_over_tls_checks_the_certificate_and_serves_the_stores() {
    let ca = TestCa::new("redis");
    let stranger = TestCa::new("redis-stranger");
    let server = redis_with_tls(&ca, &ca.issue("redis", &["localhost", "127.0.0.1"]));
    let url = format!("rediss://localhost:{}", server.port);

    let pool = common::store::redis::pool(&redis(url.clone(), Some(ca.ca_file.clone()))).unwrap();
    let mut conn = pool.get().await.unwrap();
    let () = redis::cmd("SET")
        .arg("tls-test:k")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let answer: String = redis::cmd("GET")
        .arg("tls-test:k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(answer, "v");
    let handle =
        common::store::redis::Redis::from_config(&redis(url.clone(), Some(ca.ca_file.clone())))
            .unwrap();
    handle.ping().await.unwrap();

    let untrusted = common::store::redis::Redis::from_config(&redis(
        url.clone(),
        Some(stranger.ca_file.clone()),
    ))
    .unwrap();
    assert!(
        untrusted.ping().await.is_err(),
        "a certificate from another authority is refused"
    );
    let plain = common::store::redis::Redis::from_config(&redis(
        format!("redis://127.0.0.1:{}", server.port),
        None,
    ))
    .unwrap();
    assert!(
        plain.ping().await.is_err(),
        "the TLS port does not speak plain Redis"
    );

    let ca_without_tls = common::store::redis::pool(&redis(
        format!("redis://127.0.0.1:{}", server.port),
        Some(ca.ca_file.clone()),
    ));
    assert_eq!(ca_without_tls.err().unwrap().var, "REDIS_TLS_CA_FILE");
}

fn kafka(port: u16, ca: Option<std::path::PathBuf>) -> KafkaConfig {
    KafkaConfig {
        brokers: format!("127.0.0.1:{port}"),
        topic: "tls-test".into(),
        properties: "message.timeout.ms=5000,socket.connection.setup.timeout.ms=2000".into(),
        security_protocol: KafkaSecurityProtocol::Ssl,
        ssl_ca_location: ca,
        sasl_mechanism: None,
        sasl_username: None,
        sasl_password: None,
    }
}

async fn deliver(config: &KafkaConfig) -> anyhow::Result<(i32, i64)> {
    let producer: FutureProducer = common::events::kafka::client_config(config)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .create()?;
    let delivered = producer
        .send(
            FutureRecord::to(&config.topic).key("k").payload("over tls"),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| anyhow::anyhow!("{e}"))?;
    Ok((delivered.partition, delivered.offset))
}

#[tokio::test]
async fn kafka_security_protocol_ssl_produces_through_a_tls_only_broker() {
    let ca = TestCa::new("kafka");
    let stranger = TestCa::new("kafka-stranger");
    let broker = kafka_with_tls(&ca, &ca.issue("kafka", &["localhost", "127.0.0.1"]));

    let config = kafka(broker.port, Some(ca.ca_file.clone()));
    let admin: AdminClient<DefaultClientContext> = common::events::kafka::client_config(&config)
        .unwrap()
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&config.topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create the topic over TLS");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    // The first produce may race the new topic's metadata; a few tries.
    let mut last = None;
    for _ in 0..5 {
        match deliver(&config).await {
            Ok((_, offset)) => {
                assert!(offset >= 0);
                last = None;
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    assert!(last.is_none(), "produce over TLS: {last:?}");

    let untrusted = kafka(broker.port, Some(stranger.ca_file.clone()));
    assert!(
        deliver(&untrusted).await.is_err(),
        "a broker certificate from another authority is refused"
    );
}
