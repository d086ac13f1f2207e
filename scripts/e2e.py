#!/usr/bin/env python3
"""The frontends' view, end to end (`make e2e`, part of `make test`):

1. the TypeScript client (clients/typescript): its generated types match the api's
   OpenAPI document, it builds with tsc, and its unit tests pass (node --test, mocked
   fetch);
2. a real api and consumer start (light argon2) with CORS for the page's origin;
3. the client's integration test runs against them;
4. every fenced example marked ```` ```sh runnable ```` in README.md and docs/src/ runs with
   bash against that api (`$API`), and must exit 0;
5. openid-client (tests/oidc) signs in through the OpenID Connect provider: discovery,
   PKCE, the hosted login, ID-token validation, userinfo, refresh, introspection,
   revocation, consent, single sign-on, logout and client_credentials;
6. Chromium signs in on the provider's hosted page (password, then TOTP) at one example
   app and at a second without a prompt; axe-core checks each page;
7. a webhook receiver written with the `standardwebhooks` library (tests/webhooks) is
   down while three people sign up, then comes up and verifies each `user.registered`
   delivery;
8. scim2-tester (tests/scim/check.py, PyPI, in .local/scim-venv) checks the SCIM 2.0
   endpoints against the RFCs with a token `api scim-token create` issued: 0 failures;
9. the sign-up page (examples/web) is served from another origin by a static server and
   a real Chromium (Debian's package, driven by playwright-core) registers, sees
   `completed`, logs in, edits the profile, stores a data item and logs out; screenshots
   of each step go to target/e2e/;
10. the operators' console (console/) in Chromium under its own CSP: an admin signs in
   with PKCE, ends a user's session, changes a role, imports 1 000 lines, replays a dead
   letter made here (a consumer without the sealing key), watches the lag rise and fall
   during 500 sign-ups, reads the settings; a moderator sees only their screens; axe-core
   and 360 px on every screen.

The browser step is skipped, with a message saying so, only when Chromium cannot be
installed. npm packages come from the lock files (npm ci).
"""

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chaos import ROOT, Process, Stack, log, wait_until  # noqa: E402

CLIENT = ROOT / "clients" / "typescript"
OIDC = ROOT / "tests" / "oidc"
WEBHOOKS = ROOT / "tests" / "webhooks"
WEB = ROOT / "examples" / "web"
CONSOLE = ROOT / "console"
SCIM_VENV = ROOT / ".local" / "scim-venv"
# The RFC 7643/7644 compliance checker, with its HTTP engine; the newest release that
# runs on the Python 3.11 of Debian bookworm.
SCIM2_TESTER = "scim2-tester[httpx2]==0.5.2"
OUT = ROOT / "target" / "e2e"


def npm(args, cwd, env=None):
    subprocess.run(["npm", *args], cwd=cwd, check=True, env=env)


def check_generated_types(api_bin):
    """The committed openapi.json and schema.ts are what the api and the generator give."""
    doc = subprocess.run([str(api_bin), "openapi"], capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        fresh_doc, fresh_types = Path(tmp) / "openapi.json", Path(tmp) / "schema.ts"
        fresh_doc.write_text(doc)
        subprocess.run(["npx", "openapi-typescript", str(fresh_doc), "--output", str(fresh_types)],
                       cwd=CLIENT, check=True, capture_output=True)
        stale = [name for name, fresh, committed in (
            ("openapi.json", fresh_doc, CLIENT / "openapi.json"),
            ("src/schema.ts", fresh_types, CLIENT / "src" / "schema.ts"),
        ) if not filecmp.cmp(fresh, committed, shallow=False)]
    if stale:
        sys.exit(f"clients/typescript/{', '.join(stale)} is stale: run `make client` and commit")
    log("client types match the api's OpenAPI document")


def oidc_client(stack, *args):
    """Registers a client with `api oidc-client create`; returns (id, secret or None)."""
    out = subprocess.run([str(stack.api_bin), "oidc-client", "create", *args], env=stack.env,
                         capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return values["OIDC_CLIENT_ID"], values.get("OIDC_CLIENT_SECRET")


def run_oidc_test(stack):
    """openid-client (an OpenID-certified relying party) against the provider."""
    redirect, logout = "http://127.0.0.1:18999/callback", "http://127.0.0.1:18999/signed-out"
    conf_id, conf_secret = oidc_client(
        stack, "--name", "First-party app", "--redirect-uri", redirect,
        "--post-logout-redirect-uri", logout, "--first-party",
        "--scope", "openid", "--scope", "profile", "--scope", "email", "--scope", "offline_access",
        "--grant", "authorization_code", "--grant", "refresh_token")
    public_id, _ = oidc_client(stack, "--name", "Third-party app", "--public", "--redirect-uri", redirect)
    machine_id, machine_secret = oidc_client(
        stack, "--name", "Reporting job", "--grant", "client_credentials", "--scope", "profile")
    npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], OIDC)
    env = {**os.environ, "ISSUER": stack.base, "REDIRECT_URI": redirect, "LOGOUT_URI": logout,
           "CONFIDENTIAL_ID": conf_id, "CONFIDENTIAL_SECRET": conf_secret, "PUBLIC_ID": public_id,
           "MACHINE_ID": machine_id, "MACHINE_SECRET": machine_secret}
    npm(["test"], OIDC, env)
    log("openid-client test of the OpenID Connect provider passed")


def run_webhook_test(stack, port):
    """The standardwebhooks library verifies what the consumer delivers (receiver down
    at first, then up)."""
    out = subprocess.run([str(stack.api_bin), "webhook", "create", "--url", f"http://127.0.0.1:{port}/hooks",
                          "--event-type", "user.registered", "--description", "e2e receiver"],
                         env=stack.env, capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], WEBHOOKS)
    env = {**os.environ, "API": stack.base, "WEBHOOK_PORT": str(port), "WEBHOOK_SECRET": values["WEBHOOK_SECRET"]}
    npm(["test"], WEBHOOKS, env)
    log("webhook receiver with the standardwebhooks library passed")


def run_scim_test(stack):
    """scim2-tester against the SCIM endpoints, with a token the CLI issued."""
    python = SCIM_VENV / "bin" / "python"
    marker = SCIM_VENV / "installed.txt"
    if not marker.exists() or marker.read_text() != SCIM2_TESTER:
        log(f"installing {SCIM2_TESTER} into {SCIM_VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(SCIM_VENV)], check=True)
        subprocess.run([str(SCIM_VENV / "bin" / "pip"), "install", "-q", SCIM2_TESTER], check=True)
        marker.write_text(SCIM2_TESTER)
    out = subprocess.run([str(stack.api_bin), "scim-token", "create", "--name", "scim2-tester"],
                         env=stack.env, capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    env = {**os.environ, "SCIM_URL": f"{stack.base}/scim/v2", "SCIM_TOKEN": values["SCIM_TOKEN"]}
    subprocess.run([str(python), str(ROOT / "tests" / "scim" / "check.py")], env=env, check=True)
    log("scim2-tester passed")


ADMIN_EMAIL, ADMIN_PASSWORD = "admin@e2e.example.com", "e2e admin password 2026"


def create_admin(stack):
    """The admin both browser tests sign in as (`api create-admin`, idempotent)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(ADMIN_PASSWORD + "\n")
        f.flush()
        subprocess.run([str(stack.api_bin), "create-admin", "--email", ADMIN_EMAIL, "--password-file", f.name],
                       env=stack.env, check=True, capture_output=True)


def api_call(stack, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{stack.base}{path}", data=data, method=method,
                                 headers={"content-type": "application/json",
                                          **({"authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def make_dead_letter(stack):
    """A real dead letter: a consumer without the api's sealing key cannot open one
    registration's password and dead-letters it; then the consumer gets its key back.
    Returns the registration's email (the console test replays it)."""
    token = api_call(stack, "POST", "/api/v1/auth/login",
                     {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})["accessToken"]
    other = subprocess.run([str(stack.api_bin), "keygen", "--key-id", "elsewhere"],
                           capture_output=True, text=True, check=True).stdout
    wrong_key = next(line.split("=", 1)[1] for line in other.splitlines()
                     if line.startswith("SEAL_PRIVATE_KEYS="))
    stack.consumer.terminate()
    # The browser steps clear target/e2e/ (screenshots), where the stack keeps its logs.
    stack.logdir.mkdir(parents=True, exist_ok=True)
    wrong = Process("consumer-without-key", stack.consumer.argv,
                    {**stack.env, "SEAL_PRIVATE_KEYS": wrong_key}, stack.logdir)
    wrong.start()
    try:
        email = f"dead.letter.{stack.run}@example.com"
        status, _ = stack.register(email, "console test password 2026")
        assert status == 202, status
        wait_until("the dead letter", lambda: api_call(
            stack, "GET", "/api/v1/admin/dead-letters", token=token)["count"] >= 1, 60)
    finally:
        wrong.terminate()
    stack.consumer.start()
    return email


def run_console_test(stack, browser):
    """The operators' console in Chromium (console/test/console.mjs)."""
    npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], CONSOLE)
    npm(["run", "build"], CONSOLE)
    dead = make_dead_letter(stack)
    env = {**os.environ, "API": stack.base, "CHROMIUM": browser, "OUT": str(OUT),
           "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": ADMIN_PASSWORD, "DLQ_EMAIL": dead}
    npm(["run", "test:browser"], CONSOLE, env)
    log("console test in Chromium passed")


def run_hosted_login_test(stack, browser, upstream_port):
    """Chromium signs in on the hosted page (password, TOTP) at one example app and then
    at a second one without a prompt, with a passkey through autofill, and through an
    upstream OpenID provider (oidc-provider); axe-core checks each page."""
    apps = {}
    for name, port in (("A", 18997), ("B", 18998)):
        base = f"http://127.0.0.1:{port}"
        client_id, secret = oidc_client(stack, "--name", f"Example app {name}", "--first-party",
                                        "--redirect-uri", f"{base}/callback")
        apps.update({f"APP_{name}_URL": base, f"APP_{name}_ID": client_id, f"APP_{name}_SECRET": secret})
    # An admin registers the upstream provider (oidc-provider, started by the test).
    admin_email, admin_password = ADMIN_EMAIL, ADMIN_PASSWORD
    env = {**os.environ, **apps, "ISSUER": stack.base, "CHROMIUM": browser, "OUT": str(OUT),
           "UPSTREAM_PORT": str(upstream_port), "ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": admin_password}
    npm(["run", "test:browser"], OIDC, env)


def runnable_examples():
    """(file, line, code) of every ```sh runnable block of the README and the book."""
    found = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs" / "src").glob("*.md"))]:
        lines = md.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].strip() == "```sh runnable":
                start, body = i + 1, []
                i += 1
                while i < len(lines) and lines[i].strip() != "```":
                    body.append(lines[i])
                    i += 1
                found.append((md.relative_to(ROOT), start, "\n".join(body)))
            i += 1
    return found


def run_doc_examples(base):
    examples = runnable_examples()
    if not examples:
        sys.exit("no ```sh runnable example found in README.md or docs/src/")
    for path, line, code in examples:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env={**os.environ, "API": base},
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            sys.exit(f"{path}:{line}: the example failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    log(f"{len(examples)} runnable documentation examples passed")


def serves(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def chromium():
    """Debian's Chromium, installed by scripts/services.sh; None when it cannot be."""
    found = shutil.which("chromium")
    if found:
        return found
    result = subprocess.run([str(ROOT / "scripts" / "services.sh"), "chromium"])
    return shutil.which("chromium") if result.returncode == 0 else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=str(ROOT / "target" / "debug"))
    p.add_argument("--port", type=int, default=18400)
    args = p.parse_args()

    npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], CLIENT)
    check_generated_types(Path(args.bin) / "api")
    npm(["test"], CLIENT)
    vendor = WEB / "vendor"
    vendor.mkdir(exist_ok=True)
    shutil.copyfile(CLIENT / "dist" / "src" / "index.js", vendor / "registrar-client.js")

    page_port = args.port + 11
    # WebAuthn needs a secure context: the page is served at localhost, the relying
    # party is `localhost`, and the hosted login page is reached there too.
    page_origin = f"http://localhost:{page_port}"
    os.environ["CORS_ORIGINS"] = page_origin
    stack = Stack("e2e", Path(args.bin), args.port, "", True,
                  extra_env={"OIDC_ISSUER": f"http://127.0.0.1:{args.port}",
                             "WEBAUTHN_RP_ID": "localhost",
                             "WEBAUTHN_ORIGINS": f"{page_origin},http://localhost:{args.port}",
                             # The receiver listens on loopback; retries come quickly.
                             "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
                             "WEBHOOK_RETRY_BASE_MS": "200", "WEBHOOK_RETRY_MAX_MS": "1000",
                             # The console's live view reads the consumer's metrics.
                             "CONSUMER_METRICS_URLS": f"http://127.0.0.1:{args.port + 1}/metrics",
                             "CONSOLE_DIR": str(CONSOLE / "dist")})
    # The page's api address, fixed at serve time (no query parameter can change it).
    (vendor / "config.js").write_text(f"export const API = {json.dumps(stack.base)};\n")
    server = None
    try:
        env = {**os.environ, "REGISTRAR_URL": stack.base}
        npm(["run", "test:integration"], CLIENT, env)
        log("client integration test passed")
        run_doc_examples(stack.base)
        run_oidc_test(stack)
        run_webhook_test(stack, args.port + 12)
        run_scim_test(stack)

        browser = chromium()
        if not browser:
            log("SKIPPED the browser test: Chromium could not be installed (apt-get install chromium failed)")
            return 0
        npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], WEB)
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1", "--directory", str(WEB)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("page served", lambda: serves(f"http://127.0.0.1:{page_port}/index.html"), 15)
        if OUT.exists():
            shutil.rmtree(OUT)
        env = {**os.environ, "PAGE_URL": f"{page_origin}/", "API_URL": stack.base,
               "OUT": str(OUT), "CHROMIUM": browser}
        npm(["run", "test:browser"], WEB, env)
        create_admin(stack)
        run_hosted_login_test(stack, browser, args.port + 13)
        run_console_test(stack, browser)
        log(f"browser tests passed; screenshots in {OUT}")
        stack.drop_database()
        return 0
    finally:
        if server:
            server.terminate()
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
