//! Passkeys (WebAuthn): the relying party the credentials are bound to, the pages
//! allowed to use them, and how long a ceremony may take.

use std::time::Duration;

use clap::Args;
use common::config::ConfigError;

use crate::auth::passkeys::RelyingParty;

#[derive(Args, Clone, Debug)]
pub struct PasskeyConfig {
    /// The WebAuthn relying party id: the domain passkeys are bound to, the host of
    /// the sign-in pages or a parent domain of it (`example.com` serves
    /// `id.example.com` and `app.example.com`). It can never change without losing
    /// every passkey. Empty: the host of `OIDC_ISSUER`, else `localhost`.
    #[arg(long = "webauthn-rp-id", env = "WEBAUTHN_RP_ID", default_value = "")]
    pub rp_id: String,
    /// The name authenticators show beside the passkey.
    #[arg(
        long = "webauthn-rp-name",
        env = "WEBAUTHN_RP_NAME",
        default_value = "Registrar"
    )]
    pub rp_name: String,
    /// Origins whose pages may create and use passkeys, comma-separated, each on the
    /// relying party id's domain. Empty: the `OIDC_ISSUER` origin and the CORS origins,
    /// else `http://localhost:<PORT>`.
    #[arg(
        long = "webauthn-origins",
        env = "WEBAUTHN_ORIGINS",
        default_value = ""
    )]
    pub origins: String,
    /// How long a browser has to finish a passkey ceremony (its challenge is single
    /// use and dies then), in seconds.
    #[arg(
        long = "passkey-ceremony-ttl-secs",
        env = "PASSKEY_CEREMONY_TTL_SECS",
        default_value_t = 300
    )]
    pub ceremony_ttl_secs: u64,
}

impl PasskeyConfig {
    /// The relying party from these settings, the issuer and the CORS origins.
    pub fn relying_party(
        &self,
        issuer: &str,
        cors_origins: &[String],
        port: u16,
    ) -> Result<RelyingParty, ConfigError> {
        let issuer = url::Url::parse(issuer.trim()).ok();
        // A relying party id is a domain, never an address (an issuer at 127.0.0.1
        // leaves it `localhost`).
        let rp_id = match self.rp_id.trim() {
            "" => issuer
                .as_ref()
                .and_then(|u| match u.host() {
                    Some(url::Host::Domain(d)) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .unwrap_or_else(|| "localhost".to_owned()),
            id => id.to_ascii_lowercase(),
        };
        let explicit: Vec<String> = self
            .origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        let origins = if explicit.is_empty() {
            // Derived: those of the issuer and the CORS origins that are on the relying
            // party's domain.
            let fits = |o: &String| {
                url::Url::parse(o).ok().is_some_and(|u| {
                    u.host_str()
                        .is_some_and(|h| h == rp_id || h.ends_with(&format!(".{rp_id}")))
                })
            };
            let mut derived: Vec<String> = issuer
                .iter()
                .map(|u| u.origin().ascii_serialization())
                .chain(cors_origins.iter().cloned())
                .filter(fits)
                .collect();
            if derived.is_empty() {
                derived.push(format!("http://localhost:{port}"));
            }
            derived
        } else {
            explicit
        };
        if !(30..=3600).contains(&self.ceremony_ttl_secs) {
            return Err(ConfigError::new(
                "PASSKEY_CEREMONY_TTL_SECS",
                "must be 30-3600",
            ));
        }
        RelyingParty::new(
            &rp_id,
            &self.rp_name,
            &origins,
            Duration::from_secs(self.ceremony_ttl_secs),
        )
        .map_err(|(var, e)| ConfigError::new(var, e))
    }
}
