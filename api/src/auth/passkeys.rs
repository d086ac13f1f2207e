//! The WebAuthn relying party (webauthn-rs): starts and finishes the passkey ceremonies.
//! Every passkey must be discoverable (a resident key), so a sign-in needs no name
//! first and the browser can offer passkeys in the login field's autofill. User
//! verification is required, so a passkey sign-in is two factors at once (something
//! held and the PIN or biometric that unlocked it).

use std::time::Duration;

use uuid::Uuid;
use webauthn_rs::prelude::{AuthenticationResult, CredentialID, WebauthnError};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

pub struct RelyingParty {
    webauthn: Webauthn,
    pub rp_id: String,
    pub origins: Vec<String>,
    /// How long a ceremony's challenge lives.
    pub ceremony_ttl: Duration,
}

impl RelyingParty {
    /// Fails with the variable to blame when the id or an origin does not fit.
    pub fn new(
        rp_id: &str,
        rp_name: &str,
        origins: &[String],
        ceremony_ttl: Duration,
    ) -> Result<Self, (&'static str, String)> {
        let parsed: Vec<Url> = origins
            .iter()
            .map(|o| {
                Url::parse(o).map_err(|e| ("WEBAUTHN_ORIGINS", format!("`{o}` is not a URL: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let Some((first, rest)) = parsed.split_first() else {
            return Err(("WEBAUTHN_ORIGINS", "names no origin".into()));
        };
        let mut builder = WebauthnBuilder::new(rp_id, first)
            .map_err(|e| ("WEBAUTHN_RP_ID", format!("does not fit {first}: {e}")))?
            .rp_name(rp_name)
            .timeout(ceremony_ttl);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.build().map_err(|e| {
            (
                "WEBAUTHN_ORIGINS",
                format!("do not fit WEBAUTHN_RP_ID: {e}"),
            )
        })?;
        // webauthn-rs checks the first origin against the id; the others too.
        for origin in &parsed {
            let host = origin.host_str().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                return Err((
                    "WEBAUTHN_ORIGINS",
                    format!("{origin} is not on the domain {rp_id} (WEBAUTHN_RP_ID)"),
                ));
            }
        }
        Ok(Self {
            webauthn,
            rp_id: rp_id.to_owned(),
            origins: origins.to_vec(),
            ceremony_ttl,
        })
    }

    /// Options for creating a passkey for the account with this user handle. The
    /// credential must be discoverable; `exclude` lists the account's credentials, so an
    /// authenticator does not make a second one.
    pub fn start_registration(
        &self,
        user_handle: Uuid,
        user_name: &str,
        display_name: &str,
        exclude: Vec<Vec<u8>>,
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), WebauthnError> {
        let exclude: Vec<CredentialID> = exclude.into_iter().map(CredentialID::from).collect();
        let exclude = (!exclude.is_empty()).then_some(exclude);
        let (mut options, state) = self.webauthn.start_passkey_registration(
            user_handle,
            user_name,
            display_name,
            exclude,
        )?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok((options, state))
    }

    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, WebauthnError> {
        self.webauthn.finish_passkey_registration(credential, state)
    }

    /// Options for a sign-in with any of the relying party's passkeys (the browser lets
    /// the person choose, or offers them in autofill).
    pub fn start_sign_in(
        &self,
    ) -> Result<(RequestChallengeResponse, DiscoverableAuthentication), WebauthnError> {
        self.webauthn.start_discoverable_authentication()
    }

    /// The user handle and credential id an assertion names (not yet verified).
    pub fn identify<'a>(
        &self,
        credential: &'a PublicKeyCredential,
    ) -> Result<(Uuid, &'a [u8]), WebauthnError> {
        self.webauthn
            .identify_discoverable_authentication(credential)
    }

    /// Verifies an assertion against the stored passkey: the challenge, origin, RP id,
    /// user verification, signature and signature counter.
    pub fn finish_sign_in(
        &self,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<AuthenticationResult, WebauthnError> {
        let key = DiscoverableKey::from(passkey);
        self.webauthn
            .finish_discoverable_authentication(credential, state, &[key])
    }
}
