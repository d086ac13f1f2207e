// Settings, read-only: OpenID Connect clients, upstream identity providers, webhooks
// and SCIM tokens. Secrets are shown once at creation (API or CLI) and never here.

import type { Ctx } from "./main.js";
import { badge, errorBox, h, table, view, when } from "./ui.js";

async function section(title: string, id: string, load: () => Promise<HTMLElement>): Promise<HTMLElement> {
  let body: HTMLElement;
  try {
    body = await load();
  } catch (e) {
    body = errorBox(e);
  }
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), body);
}

export async function settingsView(ctx: Ctx): Promise<void> {
  const c = ctx.client;
  const parts = await Promise.all([
    section("OpenID Connect clients", "clients-title", async () =>
      table("OpenID Connect clients", ["Name", "Client id", "Type", "Redirect URIs", "Grants"], (await c.oidcClients()).map((x) => [
        x.name,
        h("span", { class: "mono" }, x.clientId),
        `${x.confidential ? "confidential" : "public"}${x.firstParty ? ", first party" : ""}`,
        h("span", { class: "mono" }, x.redirectUris.join(" ")),
        x.grantTypes.join(", "),
      ]), "clients-table"),
    ),
    section("Upstream identity providers", "providers-title", async () =>
      table("Upstream identity providers", ["Name", "Issuer", "Client id", "Enabled"], (await c.upstreamProviders()).map((p) => [
        p.name,
        h("span", { class: "mono" }, p.issuer),
        h("span", { class: "mono" }, p.clientId),
        p.enabled ? badge("enabled", "ok") : badge("disabled", "warn"),
      ]), "providers-table"),
    ),
    section("Webhooks", "webhooks-title", async () =>
      table("Webhooks", ["URL", "Events", "State"], (await c.webhooks()).map((w) => [
        h("span", { class: "mono" }, w.url),
        w.eventTypes.join(", ") || "all",
        w.enabled ? badge(w.failingSince ? "failing" : "active", w.failingSince ? "warn" : "ok") : badge(`disabled${w.disabledReason ? `: ${w.disabledReason}` : ""}`, "bad"),
      ]), "webhooks-table"),
    ),
    section("SCIM tokens", "scim-title", async () =>
      table("SCIM tokens", ["Name", "Created", "Last used", "State"], (await c.scimTokens()).map((t) => [
        t.name,
        when(t.createdAt),
        when(t.lastUsedAt),
        t.revokedAt ? badge("revoked", "bad") : badge("active", "ok"),
      ]), "scim-table"),
    ),
  ]);
  view("Settings", h("p", { class: "muted" }, "Create and change these with the admin API or the api's CLI; secrets are shown once, at creation."), ...parts);
}
