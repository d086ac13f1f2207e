//! argon2id hashing with configurable cost (OWASP defaults: m=19456 KiB, t=2, p=1), and
//! verification of the hashes imported users bring from other systems: argon2i, scrypt
//! (PHC strings) and bcrypt (`$2a$`, `$2b$`, `$2y$`), each re-hashed to argon2id at the
//! first successful login.

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

    /// argon2's working memory for one hash with these parameters (19 MiB with the
    /// defaults), for [`Self::hash_with_memory`] to reuse hash after hash.
    pub fn memory(&self) -> Vec<argon2::Block> {
        vec![argon2::Block::default(); self.params.block_count()]
    }

    /// [`Self::hash`] in working memory the caller keeps (from [`Self::memory`]): the
    /// same PHC string, without allocating and touching 19 MiB of fresh pages for every
    /// hash (about 5 000 page faults each, an eighth of the hash's CPU time). Argon2
    /// writes every block before it reads it, so what an earlier hash left there does
    /// not matter.
    pub fn hash_with_memory(
        &self,
        password: &SecretString,
        memory: &mut [argon2::Block],
    ) -> Result<String, HashError> {
        self.hash_with_salt(password, &SaltString::generate(&mut OsRng), memory)
    }

    fn hash_with_salt(
        &self,
        password: &SecretString,
        salt: &SaltString,
        memory: &mut [argon2::Block],
    ) -> Result<String, HashError> {
        let error = |e: &dyn std::fmt::Display| HashError(e.to_string());
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .as_salt()
            .decode_b64(&mut salt_bytes)
            .map_err(|e| error(&e))?;
        let output_len = self
            .params
            .output_len()
            .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
        let output = argon2::password_hash::Output::init_with(output_len, |out| {
            self.argon2()
                .hash_password_into_with_memory(
                    password.expose_secret().as_bytes(),
                    salt_bytes,
                    out,
                    &mut *memory,
                )
                .map_err(argon2::password_hash::Error::from)
        })
        .map_err(|e| error(&e))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: argon2::password_hash::ParamsString::try_from(&self.params)
                .map_err(|e| error(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Verifies against a stored hash, with the algorithm and parameters recorded in it:
    /// argon2id or argon2i, scrypt (PHC strings) or bcrypt. A hash whose costs are
    /// outside [`within_bounds`] is never computed (false): an imported `m=4294967295`
    /// or bcrypt cost 31 would otherwise take the process down or pin a core.
    pub fn verify(&self, password: &SecretString, stored: &str) -> bool {
        if within_bounds(stored).is_err() {
            return false;
        }
        let secret = password.expose_secret().as_bytes();
        if is_bcrypt(stored) {
            return bcrypt::verify(secret, stored).unwrap_or(false);
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        match parsed.algorithm.as_str() {
            "scrypt" => scrypt::Scrypt.verify_password(secret, &parsed).is_ok(),
            // Argon2 verifies with the variant, version and costs the hash names.
            "argon2id" | "argon2i" | "argon2d" => {
                self.argon2().verify_password(secret, &parsed).is_ok()
            }
            _ => false,
        }
    }

    /// Whether a stored hash was made with other (older, usually weaker) parameters than
    /// the configured ones, or another algorithm, and should be replaced at next login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        if is_bcrypt(phc) {
            return true;
        }
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

    /// Whether `phc` is an argon2id hash this service can verify.
    pub fn is_argon2id_phc(phc: &str) -> bool {
        PasswordHash::new(phc)
            .map(|p| p.algorithm.as_str() == "argon2id")
            .unwrap_or(false)
    }

    /// Whether an imported hash is one this service verifies: an argon2id, argon2i or
    /// scrypt PHC string whose parameters parse, or a bcrypt hash, with costs inside
    /// [`within_bounds`].
    pub fn is_importable_hash(stored: &str) -> bool {
        if within_bounds(stored).is_err() {
            return false;
        }
        if is_bcrypt(stored) {
            return true;
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        if parsed.hash.is_none() || parsed.salt.is_none() {
            return false;
        }
        match parsed.algorithm.as_str() {
            "argon2id" | "argon2i" => Params::try_from(&parsed).is_ok(),
            "scrypt" => scrypt::Params::try_from(&parsed).is_ok(),
            _ => false,
        }
    }
}

/// The costs a stored hash may name before anything computes it. Above them one
/// verification costs seconds of a core or gigabytes (argon2 allocates its memory
/// infallibly); below them the hash protects nothing. Such hashes are refused at
/// import, and a login against one answers "password reset required" without hashing.
pub mod bounds {
    /// argon2: memory in KiB, passes, lanes.
    pub const ARGON2_MEMORY_KIB: std::ops::RangeInclusive<u32> = 64..=262_144;
    pub const ARGON2_PASSES: std::ops::RangeInclusive<u32> = 1..=16;
    pub const ARGON2_LANES: std::ops::RangeInclusive<u32> = 1..=16;
    /// bcrypt cost (2^cost rounds); 4 is the algorithm's floor, 15 about 2 s here.
    pub const BCRYPT_COST: std::ops::RangeInclusive<u32> = 4..=15;
    /// scrypt: log2(N) and the memory 128·r·N it needs, in bytes; parallelism.
    pub const SCRYPT_LOG_N: std::ops::RangeInclusive<u8> = 10..=20;
    pub const SCRYPT_MAX_MEMORY: u64 = 256 * 1024 * 1024;
    pub const SCRYPT_MAX_P: u32 = 16;
}

/// What `users.password_hash` holds for an account without a password (provisioned
/// over SCIM, until its user sets one): no PHC string, so nothing verifies against it.
/// Erased accounts hold `!erased`; every such marker starts with `!`.
pub const NO_PASSWORD: &str = "!none";

/// Why a stored hash is outside [`bounds`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfBounds(pub String);

/// Checks the costs a stored hash names against [`bounds`]. A string that is no hash
/// at all passes here (verification simply fails on it).
pub fn within_bounds(stored: &str) -> Result<(), OutOfBounds> {
    if is_bcrypt(stored) {
        let cost =
            u32::from(stored.as_bytes()[4] - b'0') * 10 + u32::from(stored.as_bytes()[5] - b'0');
        return if bounds::BCRYPT_COST.contains(&cost) {
            Ok(())
        } else {
            Err(OutOfBounds(format!(
                "bcrypt cost {cost} is outside {:?}",
                bounds::BCRYPT_COST
            )))
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Ok(());
    };
    let number = |name: &str| -> Option<u64> {
        parsed
            .params
            .get_str(name)
            .and_then(|v| v.parse::<u64>().ok())
    };
    match parsed.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => {
            let check = |name: &str, range: &std::ops::RangeInclusive<u32>| match number(name) {
                Some(v) if u32::try_from(v).is_ok_and(|v| range.contains(&v)) => Ok(()),
                Some(v) => Err(OutOfBounds(format!(
                    "argon2 {name}={v} is outside {range:?}"
                ))),
                None => Err(OutOfBounds(format!("argon2 hash names no {name}"))),
            };
            check("m", &bounds::ARGON2_MEMORY_KIB)?;
            check("t", &bounds::ARGON2_PASSES)?;
            check("p", &bounds::ARGON2_LANES)
        }
        "scrypt" => {
            let (Some(ln), Some(r), Some(p)) = (number("ln"), number("r"), number("p")) else {
                return Err(OutOfBounds("scrypt hash lacks ln, r or p".into()));
            };
            let ln_ok = u8::try_from(ln).is_ok_and(|ln| bounds::SCRYPT_LOG_N.contains(&ln));
            let memory = 128u64.saturating_mul(r).saturating_mul(
                1u64.checked_shl(u32::try_from(ln).unwrap_or(64))
                    .unwrap_or(u64::MAX),
            );
            if !ln_ok
                || memory > bounds::SCRYPT_MAX_MEMORY
                || p == 0
                || p > u64::from(bounds::SCRYPT_MAX_P)
                || r == 0
            {
                return Err(OutOfBounds(format!(
                    "scrypt ln={ln} r={r} p={p} is outside the bounds"
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `$2a$`, `$2b$` or `$2y$`, a two-digit cost, then 53 characters of bcrypt's base64.
fn is_bcrypt(stored: &str) -> bool {
    let b = stored.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
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
    fn hashing_in_reused_memory_gives_the_same_phc_string_as_the_crate() {
        let hasher = light();
        let password = SecretString::from("correct horse battery staple");
        let mut memory = hasher.memory();
        for salt in ["c2FsdHNhbHRzYWx0c2FsdA", "b3RoZXJzYWx0b3RoZXJzYWx0"] {
            let salt = SaltString::from_b64(salt).unwrap();
            let crate_hash = hasher
                .argon2()
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .unwrap()
                .to_string();
            // The second round runs in memory the first one left dirty.
            let reused = hasher
                .hash_with_salt(&password, &salt, &mut memory)
                .unwrap();
            assert_eq!(reused, crate_hash);
        }
        let fresh_salt = hasher.hash_with_memory(&password, &mut memory).unwrap();
        assert!(hasher.verify(&password, &fresh_salt));
        assert!(!hasher.verify(&SecretString::from("wrong"), &fresh_salt));
        assert!(!hasher.needs_rehash(&fresh_salt));
    }

    #[test]
    fn the_production_defaults_produce_an_owasp_argon2id_hash() {
        let h = PasswordHasherService::new(Argon2Config::default()).unwrap();
        let phc = h.hash(&SecretString::from("correct horse")).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify(&SecretString::from("correct horse"), &phc));
        // The consumer's path: working memory kept from one hash to the next.
        let mut memory = h.memory();
        for _ in 0..2 {
            let phc = h
                .hash_with_memory(&SecretString::from("correct horse"), &mut memory)
                .unwrap();
            assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
            assert!(h.verify(&SecretString::from("correct horse"), &phc));
        }
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
    fn hashes_from_other_systems_verify_and_need_a_rehash() {
        let h = light();
        let pw = SecretString::from("imported secret");
        let wrong = SecretString::from("wrong secret");
        let bcrypt_hash = bcrypt::hash("imported secret", 4).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let scrypt_hash = scrypt::Scrypt
            .hash_password_customized(
                b"imported secret",
                None,
                None,
                scrypt::Params::new(10, 8, 1, 32).unwrap(),
                &salt,
            )
            .unwrap()
            .to_string();
        let argon2i_hash = Argon2::new(
            Algorithm::Argon2i,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(b"imported secret", &salt)
        .unwrap()
        .to_string();
        for stored in [&bcrypt_hash, &scrypt_hash, &argon2i_hash] {
            assert!(
                PasswordHasherService::is_importable_hash(stored),
                "{stored}"
            );
            assert!(h.verify(&pw, stored), "{stored}");
            assert!(!h.verify(&wrong, stored), "{stored}");
            assert!(h.needs_rehash(stored), "{stored}");
        }
        assert!(PasswordHasherService::is_importable_hash(
            &h.hash(&pw).unwrap()
        ));
        for junk in [
            "plaintext",
            "$2b$10$short",
            "$md5$abc",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
        ] {
            assert!(!PasswordHasherService::is_importable_hash(junk), "{junk}");
            assert!(!h.verify(&pw, junk));
        }
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
    fn hashes_with_costs_outside_the_bounds_are_refused_without_being_computed() {
        let service = light();
        let password = SecretString::from("imported secret".to_owned());
        // A real bcrypt hash at cost 4, its cost raised to 31: never run.
        let cheap = bcrypt::hash("imported secret", 4).unwrap();
        let costly = format!("$2b$31{}", &cheap[6..]);
        assert!(within_bounds(&cheap).is_ok());
        assert!(within_bounds(&costly).is_err());
        assert!(!PasswordHasherService::is_importable_hash(&costly));
        let started = std::time::Instant::now();
        assert!(!service.verify(&password, &costly));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // argon2 asking for 4 TiB, or for 8 KiB.
        let huge = "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let tiny = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        for hash in [huge, tiny] {
            assert!(within_bounds(hash).is_err(), "{hash}");
            assert!(!PasswordHasherService::is_importable_hash(hash));
            assert!(!service.verify(&password, hash));
        }
        // scrypt wanting 2^30 blocks of 1 KiB.
        let scrypt_huge =
            "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(within_bounds(scrypt_huge).is_err());
        // The production parameters and the tests' light ones are inside.
        let current = PasswordHasherService::new(Argon2Config::default())
            .unwrap()
            .hash(&password)
            .unwrap();
        assert!(within_bounds(&current).is_ok());
        assert!(within_bounds(&service.hash(&password).unwrap()).is_ok());
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
