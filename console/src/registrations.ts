// Registrations in flight: the pending ones, failures of the last day by reason, and a
// search by email or registration id.

import type { TrackedRegistration } from "@registrar/client";
import type { Ctx } from "./main.js";
import { badge, errorBox, field, h, table, view, when } from "./ui.js";

function rows(list: TrackedRegistration[]) {
  return list.map((r) => [
    r.email,
    h("span", { class: "mono" }, r.registrationId),
    badge(r.status, r.status === "completed" ? "ok" : r.status === "failed" ? "bad" : "warn"),
    r.reason ?? "—",
    when(r.at),
  ]);
}

export async function registrationsView(ctx: Ctx): Promise<void> {
  const q = h("input", { id: "registration-search", type: "search", name: "q", autocomplete: "off", placeholder: "email or registration id" });
  const body = h("div", { id: "registrations-body" });

  async function load(): Promise<void> {
    body.setAttribute("aria-busy", "true");
    try {
      const r = await ctx.client.registrationsInFlight(q.value.trim() || undefined);
      const reasons = Object.entries(r.failedByReason);
      body.replaceChildren(
        q.value.trim()
          ? h("section", { "aria-labelledby": "matches-title" }, h("h2", { id: "matches-title" }, "Search result"), table("Matching registrations", ["Email", "Registration", "Status", "Reason", "Since"], rows(r.matches), "matches-table"))
          : "",
        h(
          "div",
          { class: "cards" },
          h("div", { class: "card" }, h("div", { class: "value", id: "pending-total" }, String(r.pendingTotal)), h("div", { class: "label" }, "in flight")),
          ...reasons.map(([reason, n]) => h("div", { class: "card" }, h("div", { class: "value" }, String(n)), h("div", { class: "label" }, `failed: ${reason}`))),
        ),
        r.complete ? "" : h("p", { class: "muted" }, "More than 10 000 keys: the counts cover the first 10 000."),
        h("h2", {}, "In flight"),
        table("Pending registrations, newest first", ["Email", "Registration", "Status", "Reason", "Since"], rows(r.pending), "pending-table"),
        h("h2", {}, "Failed in the last 24 hours"),
        table("Failed registrations, newest first", ["Email", "Registration", "Status", "Reason", "Since"], rows(r.failed), "failed-table"),
      );
    } catch (e) {
      body.replaceChildren(errorBox(e));
    } finally {
      body.removeAttribute("aria-busy");
    }
  }

  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (e: Event) => {
        e.preventDefault();
        void load();
      },
    },
    field("Email or registration id", q),
    h("button", { type: "submit", class: "primary" }, "Search"),
    h("button", { type: "button", onclick: () => void load() }, "Refresh"),
  );
  view("Registrations", form, body);
  await load();
}
