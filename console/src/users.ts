// Users: a filtered, keyset-paged list, and one user's profile, sessions, audit trail
// and the admin's actions (role, verify, second factor, delete, erase), each confirmed.

import type { Role, User, UserFilter } from "@registrar/client";
import type { Ctx } from "./main.js";
import { announce, badge, confirmAction, errorBox, field, h, select, table, view, when } from "./ui.js";

function nameOf(u: User): string {
  return u.name ?? ([u.firstName, u.lastName].filter(Boolean).join(" ") || "—");
}

export async function usersView(ctx: Ctx): Promise<void> {
  const params = new URLSearchParams(location.hash.split("?")[1] ?? "");
  const q = h("input", { id: "user-search", type: "search", name: "q", value: params.get("q") ?? "", autocomplete: "off", placeholder: "email or name prefix" });
  const role = select("user-role", [["", "any"], ["user", "user"], ["moderator", "moderator"], ["admin", "admin"]]);
  const statusOptions: [string, string][] = ctx.isAdmin ? [["active", "active"], ["deleted", "deleted"], ["all", "all"]] : [["active", "active"]];
  const status = select("user-status", statusOptions);
  const verified = select("user-verified", [["", "any"], ["true", "verified"], ["false", "not verified"]]);
  const mfa = select("user-mfa", [["", "any"], ["true", "on"], ["false", "off"]]);
  const results = h("div", { id: "user-results" });
  const cursors: (string | undefined)[] = [undefined];

  async function load(page: number): Promise<void> {
    const filter: UserFilter = {
      q: q.value.trim() || undefined,
      role: (role.value || undefined) as Role | undefined,
      status: status.value as UserFilter["status"],
      verified: verified.value ? verified.value === "true" : undefined,
      mfa: mfa.value ? mfa.value === "true" : undefined,
      limit: 25,
      cursor: cursors[page],
    };
    results.setAttribute("aria-busy", "true");
    try {
      const found = await ctx.client.listUsers(filter);
      cursors[page + 1] = found.nextCursor ?? undefined;
      const rows = found.items.map((u) => [
        h("a", { href: `#/users/${encodeURIComponent(u.id)}` }, u.email),
        nameOf(u),
        u.role,
        u.emailVerified ? badge("verified", "ok") : badge("unverified", "warn"),
        u.deletedAt ? badge(u.erasedAt ? "erased" : "deleted", "bad") : badge("active", "ok"),
        when(u.createdAt),
      ]);
      const prev = h("button", { type: "button", id: "users-prev", disabled: page === 0, onclick: () => void load(page - 1) }, "Previous page");
      const next = h("button", { type: "button", id: "users-next", disabled: !found.nextCursor, onclick: () => void load(page + 1) }, "Next page");
      results.replaceChildren(
        table("Users", ["Email", "Name", "Role", "Address", "Status", "Created"], rows, "users-table"),
        h("div", { class: "actions" }, prev, next, h("span", { class: "muted" }, `Page ${page + 1}`)),
      );
      announce(`${found.items.length} users on page ${page + 1}`);
    } catch (e) {
      results.replaceChildren(errorBox(e));
    } finally {
      results.removeAttribute("aria-busy");
    }
  }

  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (e: Event) => {
        e.preventDefault();
        cursors.length = 1;
        void load(0);
      },
    },
    field("Search", q),
    field("Role", role),
    field("Status", status),
    field("Address", verified),
    field("Second factor", mfa),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  view("Users", form, results);
  await load(0);
}

export async function userView(ctx: Ctx, id: string): Promise<void> {
  const user = await ctx.client.user(id);
  const status = h("div", { id: "user-actions-status" });
  const sessions = h("section", { "aria-labelledby": "sessions-title" });
  const audit = h("section", { "aria-labelledby": "audit-title" });
  const credentials = h("section", { "aria-labelledby": "credentials-title" });
  view(
    user.email,
    h("p", {}, h("a", { href: "#/users" }, "← All users")),
    h(
      "dl",
      { class: "props", id: "user-profile" },
      h("dt", {}, "Id"), h("dd", { class: "mono" }, user.id),
      h("dt", {}, "Name"), h("dd", {}, nameOf(user)),
      h("dt", {}, "Username"), h("dd", {}, user.username ?? "—"),
      h("dt", {}, "Role"), h("dd", { id: "user-role-value" }, user.role),
      h("dt", {}, "Address"), h("dd", { id: "user-verified-value" }, user.emailVerified ? "verified" : "not verified"),
      h("dt", {}, "Occupation"), h("dd", {}, user.occupation ?? "—"),
      h("dt", {}, "Registration"), h("dd", { class: "mono" }, user.registrationId),
      h("dt", {}, "Created"), h("dd", {}, when(user.createdAt)),
      h("dt", {}, "Updated"), h("dd", {}, when(user.updatedAt)),
      user.deletedAt ? h("dt", {}, "Deleted") : null, user.deletedAt ? h("dd", {}, when(user.deletedAt)) : null,
    ),
    ctx.isAdmin && !user.deletedAt ? actions(ctx, user, status) : null,
    status,
    ctx.isAdmin ? sessions : null,
    ctx.isAdmin ? credentials : null,
    ctx.isAdmin ? audit : null,
  );
  // Sessions and the audit trail are for admins (moderators read profiles).
  if (ctx.isAdmin) {
    await loadSessions(ctx, user, sessions);
    await loadCredentials(ctx, user, credentials);
    await loadAudit(ctx, user, audit);
  }
}

async function act(status: HTMLElement, done: string, work: () => Promise<unknown>): Promise<boolean> {
  try {
    await work();
    status.replaceChildren(h("p", { role: "status" }, done));
    announce(done);
    return true;
  } catch (e) {
    status.replaceChildren(errorBox(e));
    return false;
  }
}

function actions(ctx: Ctx, user: User, status: HTMLElement): HTMLElement {
  const role = select("new-role", [["user", "user"], ["moderator", "moderator"], ["admin", "admin"]], user.role);
  const reload = () => void userView(ctx, user.id);
  return h(
    "section",
    { "aria-labelledby": "actions-title" },
    h("h2", { id: "actions-title" }, "Actions"),
    h(
      "div",
      { class: "actions" },
      field("Role", role),
      h("button", {
        type: "button",
        id: "change-role",
        onclick: async () => {
          const to = role.value as Role;
          if (to === user.role) return;
          if (!(await confirmAction("Change role", `Make ${user.email} ${to}? Their sessions end at once.`, "Change role"))) return;
          if (await act(status, `Role changed to ${to}`, () => ctx.client.changeRole(user.id, to))) reload();
        },
      }, "Change role"),
    ),
    h(
      "div",
      { class: "actions" },
      user.emailVerified
        ? null
        : h("button", {
            type: "button",
            id: "verify-email",
            onclick: async () => {
              if (!(await confirmAction("Verify address", `Mark ${user.email} verified without a mail?`, "Verify"))) return;
              if (await act(status, "Address verified", () => ctx.client.verifyUserEmail(user.id))) reload();
            },
          }, "Verify address"),
      h("button", {
        type: "button",
        id: "reset-mfa",
        onclick: async () => {
          if (!(await confirmAction("Reset second factor", `Remove ${user.email}'s authenticator app? They are told by mail.`, "Reset"))) return;
          await act(status, "Second factor removed", () => ctx.client.resetUserMfa(user.id));
        },
      }, "Reset second factor"),
      h("button", {
        type: "button",
        id: "delete-user",
        class: "danger",
        onclick: async () => {
          if (!(await confirmAction("Delete user", `Delete ${user.email}? Their sessions end; the account can no longer sign in.`, "Delete"))) return;
          if (await act(status, "User deleted", () => ctx.client.deleteUser(user.id))) reload();
        },
      }, "Delete"),
      h("button", {
        type: "button",
        id: "erase-user",
        class: "danger",
        onclick: async () => {
          if (!(await confirmAction("Erase user", `Erase ${user.email}'s personal data for good (GDPR)? The audit trail stays without it. This cannot be undone.`, "Erase"))) return;
          if (await act(status, "User erased", () => ctx.client.deleteUser(user.id, { erase: true }))) reload();
        },
      }, "Erase"),
    ),
  );
}

async function loadSessions(ctx: Ctx, user: User, into: HTMLElement): Promise<void> {
  const list = await ctx.client.userSessions(user.id);
  const rows = list.map((s) => [
    when(s.createdAt),
    when(s.lastUsedAt),
    s.ip ?? "—",
    h("span", { class: "muted" }, s.userAgent ?? "—"),
    h("button", {
      type: "button",
      class: "end-session",
      "data-session": s.id,
      "aria-label": `End the session started ${when(s.createdAt)}`,
      onclick: async () => {
        if (!(await confirmAction("End session", `End this session of ${user.email}? Its tokens stop working at once.`, "End session"))) return;
        try {
          await ctx.client.endUserSession(user.id, s.id);
          announce("Session ended");
          await loadSessions(ctx, user, into);
        } catch (e) {
          into.append(errorBox(e));
        }
      },
    }, "End"),
  ]);
  into.replaceChildren(
    h("h2", { id: "sessions-title" }, `Sessions (${list.length})`),
    table("Live sessions", ["Started", "Last used", "Address", "Browser", ""], rows, "sessions-table"),
  );
}

async function loadCredentials(ctx: Ctx, user: User, into: HTMLElement): Promise<void> {
  const [passkeys, identities] = await Promise.all([ctx.client.userPasskeys(user.id), ctx.client.userIdentities(user.id)]);
  into.replaceChildren(
    h("h2", { id: "credentials-title" }, "Passkeys and linked accounts"),
    table("Passkeys", ["Passkey", "Kind", "Created", "Last used"], passkeys.map((p) => [p.name, `${p.authenticatorType}${p.backedUp ? ", backed up" : ""}`, when(p.createdAt), when(p.lastUsedAt)]), "passkeys-table"),
    h("p", {}),
    table("Linked accounts", ["Provider", "Upstream email", "Linked", "Last used"], identities.map((i) => [i.providerName, i.email ?? "—", when(i.createdAt), when(i.lastUsedAt)]), "identities-table"),
  );
}

async function loadAudit(ctx: Ctx, user: User, into: HTMLElement): Promise<void> {
  const page = await ctx.client.userAudit(user.id);
  const rows = page.items.map((a) => [
    when(a.createdAt),
    h("span", { class: "mono" }, a.action),
    a.actorId ? (a.actorId === user.id ? "the user" : h("a", { href: `#/users/${a.actorId}`, class: "mono" }, a.actorId === ctx.me.id ? "you" : a.actorId)) : "system",
    h("span", { class: "mono" }, JSON.stringify(a.details)),
  ]);
  into.replaceChildren(h("h2", { id: "audit-title" }, "Audit trail"), table("Audit trail, newest first", ["When", "Action", "By", "Details"], rows, "audit-table"));
}
