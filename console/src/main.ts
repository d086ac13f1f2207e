// The console's entry: sign-in, the navigation the role allows, and hash routes
// (`#/users`, `#/users/<id>`, `#/registrations`, `#/imports`, `#/dead-letters`,
// `#/pipeline`, `#/settings`).

import { RegistrarClient, RegistrarError } from "@registrar/client";
import type { User } from "@registrar/client";
import * as auth from "./auth.js";
import { $, announce, errorBox, h, view } from "./ui.js";
import { usersView, userView } from "./users.js";
import { registrationsView } from "./registrations.js";
import { importsView } from "./imports.js";
import { deadLettersView } from "./deadletters.js";
import { pipelineView } from "./pipeline.js";
import { settingsView } from "./settings.js";

export interface Ctx {
  client: RegistrarClient;
  me: User;
  isAdmin: boolean;
  /** Set by a view that holds something open (the live stream); called on leaving it. */
  cleanup?: () => void;
}

interface Section {
  path: string;
  label: string;
  adminOnly: boolean;
}

const SECTIONS: Section[] = [
  { path: "users", label: "Users", adminOnly: false },
  { path: "registrations", label: "Registrations", adminOnly: false },
  { path: "imports", label: "Imports", adminOnly: true },
  { path: "dead-letters", label: "Dead letters", adminOnly: true },
  { path: "pipeline", label: "Pipeline", adminOnly: true },
  { path: "settings", label: "Settings", adminOnly: true },
];

function route(): string[] {
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

function renderNav(ctx: Ctx): void {
  const nav = $("nav");
  const current = route()[0] ?? "users";
  nav.replaceChildren(
    ...SECTIONS.filter((s) => ctx.isAdmin || !s.adminOnly).map((s) =>
      h("a", { href: `#/${s.path}`, "aria-current": s.path === current ? "page" : null }, s.label),
    ),
  );
  nav.hidden = false;
}

async function show(ctx: Ctx): Promise<void> {
  ctx.cleanup?.();
  ctx.cleanup = undefined;
  const [section = "users", id] = route();
  renderNav(ctx);
  const allowed = SECTIONS.find((s) => s.path === section);
  try {
    if (!allowed) {
      view("Not found", h("p", {}, "No such page. ", h("a", { href: "#/users" }, "Go to users")));
    } else if (allowed.adminOnly && !ctx.isAdmin) {
      view(allowed.label, h("p", {}, "Your role does not allow this page."));
    } else if (section === "users" && id) {
      await userView(ctx, id);
    } else if (section === "users") {
      await usersView(ctx);
    } else if (section === "registrations") {
      await registrationsView(ctx);
    } else if (section === "imports") {
      await importsView(ctx);
    } else if (section === "dead-letters") {
      await deadLettersView(ctx);
    } else if (section === "pipeline") {
      await pipelineView(ctx);
    } else if (section === "settings") {
      await settingsView(ctx);
    }
  } catch (e) {
    if (e instanceof RegistrarError && e.status === 401) {
      // The token expired or the session ended: sign in again, back to this page.
      auth.keep(null);
      await auth.signIn(await auth.discover(), location.hash);
      return;
    }
    $("main").append(errorBox(e));
  }
  ($("main") as HTMLElement).focus();
}

async function boot(): Promise<void> {
  // The skip link moves focus without touching the hash (the hash is the route).
  document.querySelector(".skip")?.addEventListener("click", (e) => {
    e.preventDefault();
    $("main").focus();
  });
  let discovery;
  try {
    discovery = await auth.discover();
  } catch (e) {
    view("Registrar console", errorBox(e));
    return;
  }
  // The redirect URI is under the issuer: a console opened at another name of this
  // host moves there first (its tokens are this origin's).
  const home = new URL(auth.redirectUri(discovery));
  if (home.origin !== location.origin) {
    location.replace(`${home.origin}/console/${location.hash}`);
    return;
  }
  let session = auth.stored();
  let returnTo = location.hash;
  try {
    const done = await auth.completeSignIn(discovery);
    if (done) {
      session = done.session;
      returnTo = done.returnTo;
    }
  } catch (e) {
    view("Sign-in failed", errorBox(e), h("p", {}, h("a", { href: "/console/" }, "Try again")));
    return;
  }
  if (!session) {
    await auth.signIn(discovery, returnTo);
    return;
  }
  const client = new RegistrarClient({ baseUrl: location.origin, tokens: session.tokens });
  let me: User;
  try {
    me = await client.me();
  } catch (e) {
    if (e instanceof RegistrarError && e.status === 401) {
      auth.keep(null);
      await auth.signIn(discovery, returnTo);
      return;
    }
    view("Registrar console", errorBox(e));
    return;
  }
  if (me.role !== "admin" && me.role !== "moderator") {
    view("Registrar console", h("p", {}, `Signed in as ${me.email}. The console is for moderators and admins.`));
    return;
  }
  const ctx: Ctx = { client, me, isAdmin: me.role === "admin" };
  $("who").textContent = `${me.email} (${me.role})`;
  const signOut = $("sign-out") as HTMLButtonElement;
  signOut.hidden = false;
  signOut.addEventListener("click", async () => {
    try {
      await client.logout();
    } finally {
      auth.signOutAtProvider(discovery, session?.idToken ?? "");
    }
  });
  if (returnTo && returnTo !== location.hash) history.replaceState(null, "", `/console/${returnTo}`);
  window.addEventListener("hashchange", () => void show(ctx));
  announce(`Signed in as ${me.email}`);
  await show(ctx);
}

void boot();
