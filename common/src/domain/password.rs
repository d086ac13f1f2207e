//! argon2id hashing with configurable cost (OWASP defaults: m=19456 KiB, t=2, p=1).

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::config::ConfigError;

#[derive(Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Config {
    /// Memory cost in KiB.
    #[arg(
        long = "argon2-memory-kib",
        env = "ARGON2_MEMORY_KIB",
        default_value_t = 19_456
    )]
    pub memory_kib: u32,
    /// Iterations (time cost).
    #[arg(
        long = "argon2-iterations",
        env = "ARGON2_ITERATIONS",
        default_value_t = 2
    )]
    pub iterations: u32,
    /// Lanes per hash; parallelism across registrations comes from the hashing pool.
    #[arg(
        long = "argon2-parallelism",
        env = "ARGON2_PARALLELISM",
        default_value_t = 1
    )]
    pub parallelism: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Clone)]
pub struct PasswordHasherService {
    params: Params,
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

impl PasswordHasherService {
    pub fn new(config: Argon2Config) -> Result<Self, ConfigError> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| {
            ConfigError::new("ARGON2_MEMORY_KIB/ARGON2_ITERATIONS/ARGON2_PARALLELISM", e)
        })?;
        Ok(Self { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes with a fresh random salt; returns the PHC string. CPU-bound for tens of
    /// milliseconds: call it from a blocking pool, never on an async worker.
    pub fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon2()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Verifies against a PHC string, using the parameters recorded in it.
    pub fn verify(&self, password: &SecretString, phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|parsed| {
                self.argon2()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    /// Whether a stored hash was made with other (older, usually weaker) parameters than
    /// the configured ones, or another algorithm, and should be replaced at next login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        if parsed.algorithm.as_str() != "argon2id" {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
            }
            Err(_) => false,
        }
    }

    /// Whether `phc` is an argon2id hash this service can verify (bulk imports).
    pub fn is_argon2id_phc(phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|p| p.algorithm.as_str() == "argon2id")
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn light() -> PasswordHasherService {
        PasswordHasherService::new(Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let h = light();
        let phc = h.hash(&SecretString::from("correct horse")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(&SecretString::from("correct horse"), &phc));
        assert!(!h.verify(&SecretString::from("wrong horse"), &phc));
    }

    #[test]
    fn the_production_defaults_produce_an_owasp_argon2id_hash() {
        let h = PasswordHasherService::new(Argon2Config::default()).unwrap();
        let phc = h.hash(&SecretString::from("correct horse")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify(&SecretString::from("correct horse"), &phc));
    }

    #[test]
    fn only_argon2id_phc_strings_are_accepted_for_import() {
        let phc = light().hash(&SecretString::from("correct horse")).unwrap();
        assert!(PasswordHasherService::is_argon2id_phc(&phc));
        assert!(!PasswordHasherService::is_argon2id_phc(
            "$2b$10$abcdefghijklmnopqrstuv"
        ));
        assert!(!PasswordHasherService::is_argon2id_phc("plaintext"));
    }

    #[test]
    fn a_hash_with_other_parameters_needs_a_rehash() {
        let phc = light().hash(&SecretString::from("correct horse")).unwrap();
        assert!(!light().needs_rehash(&phc));
        let stronger = PasswordHasherService::new(Argon2Config {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert!(stronger.needs_rehash(&phc));
    }

    #[test]
    fn impossible_parameters_are_a_config_error() {
        let e = PasswordHasherService::new(Argon2Config {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        });
        assert!(e.is_err());
    }
}
