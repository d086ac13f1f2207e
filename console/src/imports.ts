// Imports: upload an NDJSON file, follow it (read, accepted, persisted, failed) with a
// progress bar, see per-line results, and the history of earlier imports.

import type { ImportStatus } from "@registrar/client";
import type { Ctx } from "./main.js";
import { announce, errorBox, field, h, table, view, when } from "./ui.js";

function lineResults(s: ImportStatus): HTMLElement {
  const refused = s.rejectedLines.map((l) => [String(l.line), "refused", l.errors.map((e) => `${e.field}: ${e.message}`).join("; ")]);
  const failed = s.failedLines.map((l) => [String(l.line), "failed", l.reason]);
  return table("Lines that did not become users", ["Line", "Result", "Why"], [...refused, ...failed], "import-lines");
}

async function showStatus(ctx: Ctx, id: string, into: HTMLElement, expectedLines?: number): Promise<ImportStatus> {
  const s = await ctx.client.importStatus(id);
  const failed = Object.values(s.failed).reduce((a, b) => a + b, 0);
  const lines = Math.max(s.lines, expectedLines ?? 0, 1);
  const done = s.completed + failed + s.rejected;
  const finished = s.finishedAt !== null && s.finishedAt !== undefined && s.pending === 0;
  into.replaceChildren(
    h("label", { for: "import-progress" }, finished ? "Import complete" : "Import in progress"),
    h("progress", { id: "import-progress", max: lines, value: Math.min(done, lines) }, `${done} of ${lines}`),
    h(
      "dl",
      { class: "props", id: "import-counts" },
      h("dt", {}, "Import"), h("dd", { class: "mono" }, s.importId),
      h("dt", {}, "Lines read"), h("dd", {}, String(s.lines)),
      h("dt", {}, "Accepted"), h("dd", {}, String(s.accepted)),
      h("dt", {}, "Refused"), h("dd", {}, String(s.rejected)),
      h("dt", {}, "Persisted"), h("dd", { id: "import-completed" }, String(s.completed)),
      h("dt", {}, "Failed"), h("dd", {}, failed ? Object.entries(s.failed).map(([k, v]) => `${k}: ${v}`).join(", ") : "0"),
      h("dt", {}, "Pending"), h("dd", { id: "import-pending" }, String(s.pending)),
      s.error ? h("dt", {}, "Stopped") : null, s.error ? h("dd", { class: "error" }, s.error) : null,
    ),
    s.rejected || failed ? lineResults(s) : "",
  );
  into.dataset.state = finished ? "complete" : "running";
  return s;
}

export async function importsView(ctx: Ctx): Promise<void> {
  const file = h("input", { id: "import-file", type: "file", name: "file", accept: ".ndjson,.jsonl,.txt,application/x-ndjson" });
  const progress = h("section", { id: "import-status", "aria-live": "polite" });
  const history = h("section", { "aria-labelledby": "history-title" });

  async function loadHistory(): Promise<void> {
    const page = await ctx.client.imports();
    history.replaceChildren(
      h("h2", { id: "history-title" }, "History"),
      table(
        "Imports, newest first",
        ["Started", "Lines", "Accepted", "Refused", "Persisted", "Finished", ""],
        page.items.map((i) => [
          when(i.startedAt),
          String(i.lines),
          String(i.accepted),
          String(i.rejected),
          String(i.completed),
          i.error ? h("span", { class: "error" }, i.error) : when(i.finishedAt),
          h("button", { type: "button", "aria-label": `Show the import started ${when(i.startedAt)}`, onclick: () => void showStatus(ctx, i.importId, progress) }, "Show"),
        ]),
        "imports-table",
      ),
    );
  }

  async function upload(e: Event): Promise<void> {
    e.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen) {
      progress.replaceChildren(h("p", { class: "error", role: "alert" }, "Choose an NDJSON file first."));
      return;
    }
    const text = await chosen.text();
    const expected = text.split("\n").filter((l) => l.trim()).length;
    const id = crypto.randomUUID();
    progress.replaceChildren(h("label", { for: "import-progress" }, "Uploading"), h("progress", { id: "import-progress", max: expected, value: 0 }));
    announce(`Importing ${expected} lines`);
    let uploading = true;
    const sending = ctx.client.importUsers(chosen, id).finally(() => (uploading = false));
    // Follow the import while it is read, then until the consumer persisted every line.
    const follow = async () => {
      for (;;) {
        await new Promise((r) => setTimeout(r, 700));
        try {
          const s = await showStatus(ctx, id, progress, expected);
          if (!uploading && progress.dataset.state === "complete") {
            announce(`Import complete: ${s.completed} persisted`);
            return;
          }
        } catch {
          // Not started yet (404 until the first line is read).
          if (!uploading) return;
        }
      }
    };
    try {
      await Promise.all([sending, follow()]);
      await loadHistory();
    } catch (err) {
      progress.append(errorBox(err));
    }
  }

  view(
    "Imports",
    h("p", { class: "muted" }, "One registration per line (NDJSON): the registration fields with password or passwordHash, and optionally role, createdAt, emailVerified."),
    h("form", { class: "filters", onsubmit: (e: Event) => void upload(e) }, field("NDJSON file", file), h("button", { type: "submit", class: "primary", id: "import-start" }, "Import")),
    progress,
    history,
  );
  await loadHistory();
}
