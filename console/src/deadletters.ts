// Dead letters: each record of the dead-letter topic with its headers, error and
// decoded payload (the credential only by kind), and replay of one or all, always
// after a dry run that says what would go back and what would be refused.

import type { DeadLetter, ReplayRequest } from "@registrar/client";
import type { Ctx } from "./main.js";
import { announce, badge, confirmAction, errorBox, field, h, select, table, view, when } from "./ui.js";

function details(d: DeadLetter): HTMLElement {
  const r = d.registration;
  return h(
    "section",
    { id: "dead-letter-detail", "aria-labelledby": "dl-title" },
    h("h2", { id: "dl-title" }, `Record ${d.position}`),
    h(
      "dl",
      { class: "props" },
      h("dt", {}, "Kind"), h("dd", {}, d.kind),
      h("dt", {}, "Error"), h("dd", {}, d.error ?? "—"),
      h("dt", {}, "Dead-lettered"), h("dd", {}, when(d.timestamp)),
      h("dt", {}, "Payload"), h("dd", {}, `${d.payloadBytes} bytes`),
    ),
    h("h3", {}, "Headers"),
    table("Headers", ["Name", "Value"], d.headers.map((x) => [h("span", { class: "mono" }, x.name), h("span", { class: "mono" }, x.value)])),
    h("h3", {}, "Payload"),
    r
      ? h(
          "dl",
          { class: "props" },
          h("dt", {}, "Registration"), h("dd", { class: "mono" }, r.registrationId),
          h("dt", {}, "Email"), h("dd", {}, r.email),
          h("dt", {}, "Name"), h("dd", {}, [r.firstName, r.lastName].filter(Boolean).join(" ") || "—"),
          h("dt", {}, "Credential"), h("dd", {}, r.credential),
          h("dt", {}, "Submitted"), h("dd", {}, when(r.submittedAt)),
          r.importId ? h("dt", {}, "Import line") : null, r.importId ? h("dd", {}, `${r.importId} #${r.importLine}`) : null,
        )
      : h("p", { class: "error" }, `Not a registration: ${d.decodeError ?? "unknown"}`),
  );
}

export async function deadLettersView(ctx: Ctx): Promise<void> {
  const kind = select("dl-kind", [["", "any"], ["undecodable", "undecodable"], ["invalid", "invalid"], ["credential", "credential"], ["unauthenticated", "unauthenticated"]]);
  const list = h("div", { id: "dead-letters" });
  const detail = h("div");
  const outcome = h("div", { id: "replay-outcome", "aria-live": "polite" });

  async function replay(request: ReplayRequest, what: string): Promise<void> {
    try {
      const dry = await ctx.client.replayDeadLetters({ ...request, dryRun: true });
      const refused = dry.refused.map((r) => `${r.position}: ${r.reason}`);
      const text = `${what}: ${dry.replayed.length} would go back to the registration topic${refused.length ? `, ${refused.length} would be refused (${refused.join("; ")})` : ""}.`;
      outcome.replaceChildren(h("p", { id: "dry-run" }, `Dry run — ${text}`));
      if (!dry.replayed.length) {
        announce("Nothing to replay");
        return;
      }
      if (!(await confirmAction("Replay", `${text} Replay now?`, "Replay"))) return;
      const done = await ctx.client.replayDeadLetters({ ...request, dryRun: false });
      const message = `Replayed ${done.replayed.length}: ${done.replayed.join(", ")}${done.refused.length ? `; refused ${done.refused.length}` : ""}.`;
      outcome.replaceChildren(h("p", { id: "replayed", role: "status" }, message));
      announce(message);
    } catch (e) {
      outcome.replaceChildren(errorBox(e));
    }
  }

  async function load(): Promise<void> {
    list.setAttribute("aria-busy", "true");
    try {
      const { items: letters, total } = await ctx.client.deadLetters(kind.value || undefined);
      const replayedFrom = (d: DeadLetter) => d.headers.find((x) => x.name === "replayed-from")?.value;
      list.replaceChildren(
        h("p", { id: "dead-letter-count" }, total > letters.length ? `${total} dead letters; the newest ${letters.length} are listed` : `${total} dead letters`),
        table(
          "Dead letters",
          ["Position", "Kind", "Registration", "Error", "When", ""],
          letters.map((d) => [
            h("span", { class: "mono" }, d.position),
            badge(d.kind, "bad"),
            d.registration ? d.registration.email : h("span", { class: "muted" }, "not decodable"),
            h("span", {}, d.error ?? "—", replayedFrom(d) ? h("span", { class: "muted" }, ` (replayed from ${replayedFrom(d)})`) : ""),
            when(d.timestamp),
            h(
              "div",
              { class: "actions" },
              h("button", { type: "button", "aria-label": `Show ${d.position}`, onclick: () => detail.replaceChildren(details(d)) }, "Show"),
              h("button", { type: "button", class: "replay-one", "data-position": d.position, "aria-label": `Replay ${d.position}`, onclick: () => void replay({ positions: [d.position], all: false }, `Record ${d.position}`) }, "Replay"),
            ),
          ]),
          "dead-letter-table",
        ),
      );
    } catch (e) {
      list.replaceChildren(errorBox(e));
    } finally {
      list.removeAttribute("aria-busy");
    }
  }

  view(
    "Dead letters",
    h("p", { class: "muted" }, "Records the consumer could not process. A replayed record keeps its registration id, so it is persisted at most once; each is checked (signature, decoding) before it goes back."),
    h(
      "form",
      { class: "filters", onsubmit: (e: Event) => { e.preventDefault(); void load(); } },
      field("Kind", kind),
      h("button", { type: "submit", class: "primary" }, "Show"),
      h("button", { type: "button", id: "replay-all", onclick: () => void replay({ positions: [], all: true, kind: kind.value || undefined }, kind.value ? `Every ${kind.value} record` : "Every record") }, "Replay all…"),
    ),
    outcome,
    list,
    detail,
  );
  await load();
}
