// Small DOM helpers. Every text goes in through textContent or attributes, never as
// HTML, so nothing a user typed into their profile can run in an admin's browser.

import { RegistrarError } from "@registrar/client";

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | ((e: Event) => void)>;

/** `h("button", {type: "button", onclick: f}, "Save")`. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

export const $ = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing`);
  return el;
};

/** Says `text` to screen readers (a polite live region). */
export function announce(text: string): void {
  const region = $("announce");
  region.textContent = "";
  // A change the next frame, so the same message twice is read twice.
  requestAnimationFrame(() => (region.textContent = text));
}

/** Replaces the main area with a view whose first heading is `title`, and moves focus there. */
export function view(title: string, ...children: Child[]): HTMLElement {
  const main = $("main");
  const heading = h("h1", { id: "view-title" }, title);
  main.replaceChildren(heading, ...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  document.title = `${title} · Registrar console`;
  return main;
}

/** A table with a caption (for screen readers), head and rows; scrolls sideways on narrow screens. */
export function table(caption: string, head: string[], rows: Child[][], id?: string): HTMLElement {
  return h(
    "div",
    { class: "table-wrap", id: id ? `${id}-wrap` : undefined },
    h(
      "table",
      { id },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...(rows.length ? rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c)))) : [h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "Nothing here."))])),
    ),
  );
}

/** Asks before a change; resolves true only on Confirm. Escape and Cancel say no. */
export function confirmAction(title: string, text: string, confirmLabel = "Confirm"): Promise<boolean> {
  const dialog = $("confirm") as HTMLDialogElement;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = confirmLabel;
  dialog.returnValue = "cancel";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    ($("confirm-cancel") as HTMLButtonElement).focus();
  });
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function badge(text: string, tone: "ok" | "warn" | "bad" | "" = ""): HTMLElement {
  return h("span", { class: `badge ${tone}`.trim() }, text);
}

/** A message for an error the api (or the network) gave. */
export function describe(e: unknown): string {
  if (e instanceof RegistrarError) {
    const details = e.details?.map((d) => `${d.field}: ${d.message}`).join("; ");
    return `${e.message}${details ? ` (${details})` : ""} [${e.code}]`;
  }
  return e instanceof Error ? e.message : String(e);
}

/** An error paragraph, announced. */
export function errorBox(e: unknown): HTMLElement {
  const text = describe(e);
  announce(text);
  return h("p", { class: "error", role: "alert" }, text);
}

/** A labelled form control. */
export function field(label: string, control: HTMLElement): HTMLElement {
  return h("label", {}, label, control);
}

export function select(id: string, options: [string, string][], value = ""): HTMLSelectElement {
  const s = h("select", { id, name: id });
  for (const [v, text] of options) s.append(h("option", { value: v, selected: v === value }, text));
  return s;
}
