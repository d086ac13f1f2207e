//! The OpenID Connect provider's settings. It is on when `OIDC_ISSUER` is set, and then
//! needs an RSA signing key (`api keygen` prints one).

use std::time::Duration;

use clap::Args;
use common::config::ConfigError;
use secrecy::SecretString;

use crate::auth::keys::JwtKeys;
use crate::auth::oidc_keys::{OidcKeys, OidcProvider};

#[derive(Args, Clone, Debug)]
pub struct OidcConfig {
    /// The provider's issuer URL (`iss`), the api's public base URL without a path, for
    /// example `https://id.example.com`. Empty: the OpenID Connect provider is off.
    #[arg(long = "oidc-issuer", env = "OIDC_ISSUER", default_value = "")]
    pub issuer: String,
    /// The RS256 ID-token signing key, `<kid>:<base64 PKCS#8 DER RSA key>` (`api keygen`).
    #[arg(
        long = "oidc-signing-key",
        env = "OIDC_SIGNING_KEY",
        hide_env_values = true,
        value_parser = common::config::secret
    )]
    pub signing_key: Option<SecretString>,
    /// A file holding the RS256 signing key instead (a mounted Kubernetes secret).
    #[arg(long = "oidc-signing-key-file", env = "OIDC_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<std::path::PathBuf>,
    /// Public keys of earlier RS256 signing keys, `<kid>:<base64 SPKI DER>`
    /// comma-separated: published and accepted while their tokens live.
    #[arg(
        long = "oidc-verification-keys",
        env = "OIDC_VERIFICATION_KEYS",
        default_value = ""
    )]
    pub verification_keys: String,
    /// Lifetime of an authorization code in seconds (single use).
    #[arg(
        long = "oidc-code-ttl-secs",
        env = "OIDC_CODE_TTL_SECS",
        default_value_t = 60
    )]
    pub code_ttl_secs: u64,
    /// How long a browser has to finish the hosted login page (password, second
    /// factor, consent) after the authorization request, in seconds.
    #[arg(
        long = "oidc-login-ttl-secs",
        env = "OIDC_LOGIN_TTL_SECS",
        default_value_t = 600
    )]
    pub login_ttl_secs: u64,
    /// Requests per minute one client may make to the token, introspection and
    /// revocation endpoints (`429` beyond); 0 turns the limit off.
    #[arg(
        long = "oidc-client-rate-per-minute",
        env = "OIDC_CLIENT_RATE_PER_MINUTE",
        default_value_t = 6000
    )]
    pub client_rate_per_minute: u64,
    /// Where the hosted login page's "Create an account" link goes (your sign-up page);
    /// empty: no link.
    #[arg(long = "oidc-signup-url", env = "OIDC_SIGNUP_URL", default_value = "")]
    pub signup_url: String,
    /// Where its "Forgot your password?" link goes (your page that posts to
    /// `/api/v1/auth/password-reset`); empty: no link.
    #[arg(
        long = "oidc-password-reset-url",
        env = "OIDC_PASSWORD_RESET_URL",
        default_value = ""
    )]
    pub password_reset_url: String,
}

impl OidcConfig {
    /// The provider, `None` when `OIDC_ISSUER` is empty.
    pub fn provider(&self, ed25519: &JwtKeys) -> Result<Option<OidcProvider>, ConfigError> {
        let issuer = self.issuer.trim().trim_end_matches('/');
        if issuer.is_empty() {
            return Ok(None);
        }
        let url = url::Url::parse(issuer)
            .map_err(|e| ConfigError::new("OIDC_ISSUER", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "https" | "http")
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path() != "/"
        {
            return Err(ConfigError::new(
                "OIDC_ISSUER",
                "must be an http(s) URL without a path, query or fragment",
            ));
        }
        let signing = common::config::secret_or_file(
            self.signing_key.as_ref(),
            self.signing_key_file.as_deref(),
            "OIDC_SIGNING_KEY",
            "OIDC_SIGNING_KEY_FILE",
        )?
        .ok_or_else(|| {
            ConfigError::new(
                "OIDC_SIGNING_KEY",
                "is required when OIDC_ISSUER is set; `api keygen` prints one",
            )
        })?;
        if !(1..=600).contains(&self.code_ttl_secs) {
            return Err(ConfigError::new("OIDC_CODE_TTL_SECS", "must be 1-600"));
        }
        if self.login_ttl_secs == 0 {
            return Err(ConfigError::new("OIDC_LOGIN_TTL_SECS", "must be positive"));
        }
        let previous: Vec<String> = self
            .verification_keys
            .split(',')
            .map(str::to_owned)
            .collect();
        let keys = OidcKeys::new(&signing, &previous, ed25519)
            .map_err(|(var, e)| ConfigError::new(var, e))?;
        Ok(Some(OidcProvider {
            issuer: issuer.to_owned(),
            keys,
            code_ttl: Duration::from_secs(self.code_ttl_secs),
            login_ttl: Duration::from_secs(self.login_ttl_secs),
            client_rate_per_minute: self.client_rate_per_minute,
            signup_url: self.signup_url.trim().to_owned(),
            password_reset_url: self.password_reset_url.trim().to_owned(),
        }))
    }
}
