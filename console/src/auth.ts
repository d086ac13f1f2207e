// Signing in through Registrar's own OpenID Connect provider: the authorization code
// flow with PKCE (S256), state and nonce, as the public first-party client
// `registrar-console`. The token endpoint gives this client the api's own access token,
// so the console calls the admin API as the signed-in person, under their role.
// The access token lives in sessionStorage (this tab only); it expires within 15
// minutes, and the provider's browser session signs in again without a prompt.

import type { Tokens } from "@registrar/client";

export const CLIENT_ID = "registrar-console";
const FLOW_KEY = "registrar-console.flow";
const TOKENS_KEY = "registrar-console.tokens";

interface Discovery {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  end_session_endpoint?: string;
}

interface Flow {
  state: string;
  nonce: string;
  verifier: string;
  returnTo: string;
}

export interface Session {
  tokens: Tokens;
  idToken: string;
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n = 32): string {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function challengeOf(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return b64url(new Uint8Array(digest));
}

export class NoProviderError extends Error {}

/** The provider's discovery document (same origin as the console). */
export async function discover(): Promise<Discovery> {
  const response = await fetch("/.well-known/openid-configuration", { headers: { accept: "application/json" } });
  if (!response.ok) {
    throw new NoProviderError("The OpenID Connect provider is not configured (OIDC_ISSUER): the console signs in through it.");
  }
  return (await response.json()) as Discovery;
}

/** The console's redirect URI: the console under the issuer. */
export function redirectUri(d: Discovery): string {
  return `${d.issuer.replace(/\/+$/, "")}/console/`;
}

/** Sends the browser to the provider's login; comes back to `returnTo` (a hash route). */
export async function signIn(d: Discovery, returnTo: string): Promise<never> {
  const flow: Flow = { state: random(), nonce: random(), verifier: random(48), returnTo };
  sessionStorage.setItem(FLOW_KEY, JSON.stringify(flow));
  const url = new URL(d.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: redirectUri(d),
    scope: "openid profile email",
    state: flow.state,
    nonce: flow.nonce,
    code_challenge: await challengeOf(flow.verifier),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
  return new Promise<never>(() => {});
}

/**
 * Finishes a sign-in when the page is the provider's redirect (`?code=…&state=…`):
 * checks the state, redeems the code with the verifier, and cleans the address bar.
 * Returns the session and where to go, or null when this is not a redirect.
 */
export async function completeSignIn(d: Discovery): Promise<{ session: Session; returnTo: string } | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return null;
  const raw = sessionStorage.getItem(FLOW_KEY);
  sessionStorage.removeItem(FLOW_KEY);
  history.replaceState(null, "", "/console/");
  if (error) throw new Error(`Sign-in refused: ${params.get("error_description") ?? error}`);
  const flow = raw ? (JSON.parse(raw) as Flow) : null;
  if (!flow || params.get("state") !== flow.state) throw new Error("Sign-in answer does not belong to this tab (state mismatch): sign in again.");
  const response = await fetch(d.token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code: code ?? "",
      redirect_uri: redirectUri(d),
      client_id: CLIENT_ID,
      code_verifier: flow.verifier,
    }),
  });
  const body = (await response.json()) as { access_token?: string; expires_in?: number; id_token?: string; error_description?: string; error?: string };
  if (!response.ok || !body.access_token) throw new Error(`Sign-in failed: ${body.error_description ?? body.error ?? response.status}`);
  const session: Session = {
    tokens: { accessToken: body.access_token, refreshToken: "", accessExpiresAt: Date.now() + (body.expires_in ?? 900) * 1000 },
    idToken: body.id_token ?? "",
  };
  const nonce = nonceOf(session.idToken);
  if (nonce !== flow.nonce) throw new Error("Sign-in answer does not match this request (nonce mismatch): sign in again.");
  keep(session);
  return { session, returnTo: flow.returnTo };
}

function nonceOf(idToken: string): string | undefined {
  try {
    const payload = idToken.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    return (JSON.parse(json) as { nonce?: string }).nonce;
  } catch {
    return undefined;
  }
}

export function keep(session: Session | null): void {
  if (session) sessionStorage.setItem(TOKENS_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(TOKENS_KEY);
}

/** The tab's session, unless it expired (or is about to). */
export function stored(): Session | null {
  const raw = sessionStorage.getItem(TOKENS_KEY);
  if (!raw) return null;
  const session = JSON.parse(raw) as Session;
  return session.tokens.accessExpiresAt - 15_000 > Date.now() ? session : null;
}

/** Ends the provider's browser session too, and comes back to the console. */
export function signOutAtProvider(d: Discovery, idToken: string): void {
  keep(null);
  if (!d.end_session_endpoint) {
    location.assign("/console/");
    return;
  }
  const url = new URL(d.end_session_endpoint);
  url.search = new URLSearchParams({
    client_id: CLIENT_ID,
    post_logout_redirect_uri: redirectUri(d),
    ...(idToken ? { id_token_hint: idToken } : {}),
  }).toString();
  location.assign(url.toString());
}
