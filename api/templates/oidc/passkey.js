// The hosted login page's passkeys: the login field offers them in its autofill
// (conditional mediation), and the button asks for one in the browser's dialog. Either
// way the answer is posted with the flow's form to /oauth2/login/passkey. Without
// WebAuthn (or without JavaScript) the button's form says so instead.
(() => {
  "use strict";
  const form = document.getElementById("passkey-form");
  const PKC = window.PublicKeyCredential;
  if (!form || !PKC || typeof PKC.parseRequestOptionsFromJSON !== "function") return;
  let pending = null;

  async function signIn(conditional) {
    if (pending) pending.abort();
    const controller = new AbortController();
    pending = controller;
    const answer = await fetch(form.dataset.options, {
      method: "POST",
      headers: { accept: "application/json" },
      credentials: "omit",
      signal: controller.signal,
    });
    if (!answer.ok) throw new Error(`options: HTTP ${answer.status}`);
    const ceremony = await answer.json();
    const credential = await navigator.credentials.get({
      publicKey: PKC.parseRequestOptionsFromJSON(ceremony.options.publicKey),
      mediation: conditional ? "conditional" : "optional",
      signal: controller.signal,
    });
    form.elements.namedItem("ceremony").value = ceremony.ceremonyId;
    form.elements.namedItem("credential").value = JSON.stringify(credential.toJSON());
    pending = null;
    form.submit();
  }

  form.addEventListener("submit", (event) => {
    if (form.elements.namedItem("credential").value) return;
    event.preventDefault();
    signIn(false).catch(() => {
      const status = document.getElementById("passkey-status");
      if (status) status.textContent = "No passkey was used. Try again, or sign in with your password.";
    });
  });
  // A password sign-in ends the pending autofill request.
  document.getElementById("password-form")?.addEventListener("submit", () => pending?.abort());
  if (typeof PKC.isConditionalMediationAvailable === "function") {
    PKC.isConditionalMediationAvailable().then((available) => {
      if (available) signIn(true).catch(() => {});
    });
  }
})();
