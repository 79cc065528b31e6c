// The session sidebar: sign in, list sessions (load more), read and write a session's messages, live.
// Everything the API returns is user data: it is only ever put on the page with textContent.

import { openStream } from "./live.js";

const PAGE_SIZE = 10;
const PINNED_PAGE = 100;
const MESSAGE_PAGE = 50;
const USERS_MAX = 1000; // an admin's user picker lists this many users at most
const SEARCH_DELAY_MS = 300; // the search waits this long after the last key
const TOKEN_KEY = "chat-sessions.token";
const API_BASE = (document.querySelector('meta[name="api-base"]')?.content || "").replace(/\/$/, "");

const $ = (id) => document.getElementById(id);

// What a signed-in page holds; signing out starts again from `signedOut()`.
const signedOut = () => ({
  token: null,
  me: null,
  filter: "", // "" = the API's default (own sessions; an admin's whole tenant), else a user_id
  view: "sessions", // or "archived"
  query: "", // the search box's text: non-blank, the groups are one list of search results
  groups: [], // the sidebar's groups of the view (see viewGroups)
  checked: new Set(), // session ids ticked for "Archive selected"
  selected: null,
  messages: [], // the open session's loaded messages, oldest first
  olderCursor: null, // where older messages continue (null: the oldest is loaded)
  loadingOlder: false,
  agents: [],
  users: new Map(), // an admin's directory (GET /users): user_id → {display_name, email, role}
  live: null, // the open event stream (live.js)
  access: null, // the access-log view, when open: {entries, total, titles: Map(session_id → title)}
  editing: null, // {sessionId, mode: "rename" | "delete", draft}: a sidebar item being renamed or deleted
});
const state = signedOut();

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// ---------- HTTP ----------

// Read your writes: every write's answer carries X-Read-After (the primary's WAL position, "16/B374D848");
// sent back on every request, it keeps a read replica from answering before it has replayed that write.
const READ_AFTER_KEY = "chat-sessions.read-after";

function rememberReadAfter(response) {
  const position = response.headers.get("X-Read-After");
  const known = sessionStorage.getItem(READ_AFTER_KEY);
  const order = (lsn) => lsn.split("/").map((part) => parseInt(part, 16));
  const [hi, lo] = position ? order(position) : [];
  const [knownHi, knownLo] = known ? order(known) : [-1, -1];
  if (position && (hi > knownHi || (hi === knownHi && lo > knownLo))) sessionStorage.setItem(READ_AFTER_KEY, position);
}

// What every API request sends: the token, and the latest X-Read-After.
function apiHeaders(token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const readAfter = sessionStorage.getItem(READ_AFTER_KEY);
  if (readAfter) headers["X-Read-After"] = readAfter;
  return headers;
}

async function request(path, { method = "GET", body, token = state.token } = {}) {
  const headers = { Accept: "application/json", ...apiHeaders(token) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API_BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  rememberReadAfter(response);
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
    throw new ApiError(response.status, detail || `HTTP ${response.status}`);
  }
  return data;
}

function api(path, options) {
  return request(`/api/${state.me.tenant_id}${path}`, options);
}

function describe(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Please try again.";
  if (error.status === 0) return error.message;
  if (error.status === 403) return `Not allowed: ${error.message}`;
  if (error.status === 404) return "Not found: it no longer exists or you cannot see it.";
  if (error.status === 400) return `Rejected: ${error.message}`;
  if (error.status === 503) return "The service is busy or its database is unavailable. Try again shortly.";
  if (error.status >= 500) return `The server failed (HTTP ${error.status}). Try again later.`;
  return `Error ${error.status}: ${error.message}`;
}

// Every API failure goes through here: 401 → back to sign-in, anything else → a visible message.
function handle(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your sign-in is no longer valid. Please sign in again.");
    return;
  }
  showBanner(describe(error));
}

// ---------- small view helpers ----------

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showBanner(text) {
  $("banner-text").textContent = text;
  $("banner").hidden = false;
}

function hideBanner() {
  $("banner").hidden = true;
  $("banner-text").textContent = "";
}

const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const absolute = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });

function relativeTime(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  const steps = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [7, "day"],
    [4.35, "week"],
    [12, "month"],
    [Infinity, "year"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) {
      if (unit === "second" && Math.abs(value) < 45) return "just now";
      return relative.format(Math.round(value), unit);
    }
    value /= size;
  }
  return absolute.format(new Date(iso));
}

function timeElement(iso, className) {
  const node = el("time", className, relativeTime(iso));
  node.dateTime = iso;
  node.title = absolute.format(new Date(iso));
  return node;
}

// A user as the page names them: "me", a name from the admin's directory, else an id prefix.
function userName(userId) {
  if (state.me && userId === state.me.user_id) return "me";
  return state.users.get(userId)?.display_name || `user ${userId.slice(0, 8)}`;
}

// ---------- sign in / out ----------

function tokenTenant(token) {
  const part = token.split(".")[1];
  if (!part) throw new Error("not a JWT");
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
  const claims = JSON.parse(json);
  if (typeof claims.tenant_id !== "string") throw new Error("no tenant_id claim");
  return claims.tenant_id;
}

async function signIn(token) {
  token = token.trim();
  let tenantId;
  try {
    tenantId = tokenTenant(token);
  } catch {
    showSignIn("That does not look like a valid token (a JWT with a tenant_id claim).");
    return;
  }
  try {
    const me = await request(`/api/${encodeURIComponent(tenantId)}/me`, { token });
    state.token = token;
    state.me = me;
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch (error) {
    const message =
      error instanceof ApiError && error.status === 401
        ? "This token was not accepted (expired, wrong key or unknown user)."
        : describe(error);
    showSignIn(message);
    return;
  }
  await showApp();
}

function signOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  state.live?.close();
  Object.assign(state, signedOut());
  $("search-input").value = "";
  showSignIn(message);
}

function showSignIn(message = "") {
  hideBanner();
  $("app-view").hidden = true;
  $("signin-view").hidden = false;
  $("signin-error").textContent = message;
  $("token-input").value = "";
  loadDevUsers();
  $("token-input").focus();
}

async function loadDevUsers() {
  // Only exists in development; in production the route is absent (404) and the section stays hidden.
  let users;
  try {
    users = await request("/dev/users", { token: null });
  } catch {
    $("dev-signin").hidden = true;
    return;
  }
  const select = $("dev-user");
  select.replaceChildren();
  const groups = new Map();
  for (const user of users) {
    if (!groups.has(user.tenant_name)) {
      const group = document.createElement("optgroup");
      group.label = user.tenant_name;
      groups.set(user.tenant_name, group);
      select.append(group);
    }
    const option = el("option", "", `${user.display_name} · ${user.role} · ${user.email}`);
    option.value = JSON.stringify({ tenant_id: user.tenant_id, user_id: user.user_id });
    groups.get(user.tenant_name).append(option);
  }
  $("dev-signin").hidden = users.length === 0;
}

// ---------- the signed-in view ----------

async function showApp() {
  hideBanner();
  $("signin-view").hidden = true;
  $("app-view").hidden = false;
  const me = state.me;
  $("who").textContent = `${me.display_name} (${me.role}) · ${me.email}`;
  $("admin-picker").hidden = me.role !== "admin";
  $("access-button").textContent = me.role === "admin" ? "Access log" : "Who read my chats";
  closeAccessLog();
  state.groups = viewGroups();
  renderViewSwitch();
  renderChat();
  // The stream is opened before the list is read, so that no change falls between the two.
  await Promise.all([loadAgents(), me.role === "admin" ? loadUsers() : null, startLive()]);
  await reloadSessions();
}

async function loadAgents() {
  try {
    state.agents = await api("/agents");
  } catch (error) {
    state.agents = [];
    if (error instanceof ApiError && error.status === 401) return handle(error);
  }
  const select = $("agent-select");
  select.replaceChildren(el("option", "", "No agent"));
  select.firstChild.value = "";
  for (const agent of state.agents) {
    const option = el("option", "", agent.name);
    option.value = agent.agent_id;
    if (agent.description) option.title = agent.description;
    select.append(option);
  }
}

// An admin's directory (GET /users, by display name): names instead of ids, and the user picker.
async function loadUsers() {
  const users = new Map();
  try {
    let page;
    do {
      const offset = users.size;
      page = await api(`/users?limit=100&offset=${offset}`);
      for (const user of page.users) users.set(user.user_id, user);
    } while (page.has_more && users.size < USERS_MAX);
  } catch (error) {
    handle(error);
  }
  state.users = users;
  renderUserFilter();
}

function renderUserFilter() {
  const select = $("user-filter");
  const current = state.filter;
  select.replaceChildren();
  const everyone = el("option", "", "Everyone in my tenant");
  everyone.value = "";
  select.append(everyone);
  const me = el("option", "", `Me (${state.me.email})`);
  me.value = state.me.user_id;
  select.append(me);
  for (const user of state.users.values()) {
    if (user.user_id === state.me.user_id) continue;
    const option = el("option", "", `${user.display_name} · ${user.email}`);
    option.value = user.user_id;
    select.append(option);
  }
  select.value = current;
}

// ---------- the sidebar: groups of sessions, read with cursors ----------

// The view's groups. Each is one list query (`params`) walked with next_cursor, and `accepts` says
// whether a session (e.g. from a live event) belongs in it.
function viewGroups() {
  const base = state.filter ? { user_id: state.filter } : {};
  const group = (key, heading, params, accepts) => ({ key, heading, params: { ...base, ...params }, accepts, items: [], total: 0, cursor: null });
  // Search results: whether a changed session still matches only the API knows, so a live event
  // updates a result in place and never adds one.
  const archived = state.view === "archived" ? { archived: "true" } : {};
  if (state.query) return [group("results", "Results", { ...archived, q: state.query }, (_s, present) => present)];
  if (state.view === "archived") return [group("archived", "Archived", { archived: "true" }, (s) => s.archived)];
  return [
    group("pinned", "Pinned", { pinned: "true" }, (s) => !s.archived && s.pinned),
    group("recent", "Recent", { pinned: "false" }, (s) => !s.archived && !s.pinned),
  ];
}

async function readPage(group, limit, cursor) {
  const params = new URLSearchParams({ ...group.params, limit: String(limit) });
  if (cursor) params.set("cursor", cursor);
  return api(`/sessions?${params}`);
}

// Re-read a group's first `count` sessions (at least a page), replacing what it held; of reads that
// overlap (a write's and its live event's), the one started last wins.
async function reloadGroup(group, count) {
  const wanted = Math.max(group.key === "pinned" ? PINNED_PAGE : PAGE_SIZE, count);
  const ticket = (group.ticket = (group.ticket || 0) + 1);
  const items = [];
  let page = { next_cursor: null };
  do {
    page = await readPage(group, Math.min(100, wanted - items.length), page.next_cursor);
    items.push(...page.sessions);
  } while (page.next_cursor && items.length < wanted);
  if (ticket === group.ticket) {
    Object.assign(group, { items, total: page.total, total_capped: page.total_capped, cursor: page.next_cursor });
  }
}

// Re-read every group of the view, keeping as many sessions as each had loaded.
async function reloadSessions() {
  const groups = state.groups;
  try {
    await Promise.all(groups.map((group) => reloadGroup(group, group.items.length)));
  } catch (error) {
    handle(error);
    return;
  }
  if (groups === state.groups) renderSessions();
}

async function loadMore(group) {
  if (group.loading || !group.cursor) return;
  group.loading = true;
  $("sidebar-status").textContent = "Loading…";
  try {
    const page = await readPage(group, PAGE_SIZE, group.cursor);
    const seen = new Set(group.items.map((s) => s.session_id));
    group.items.push(...page.sessions.filter((s) => !seen.has(s.session_id)));
    group.total = page.total;
    group.total_capped = page.total_capped;
    group.cursor = page.next_cursor;
    renderSessions();
    $("sidebar-status").textContent = `Loaded ${page.sessions.length} more.`;
  } catch (error) {
    $("sidebar-status").textContent = "";
    handle(error);
  } finally {
    group.loading = false;
  }
}

// Infinite scroll: a group's "Load more" button loads the next page as soon as it scrolls into view.
const nearEnd = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const group = state.groups.find((g) => g.key === entry.target.dataset.group);
    if (entry.isIntersecting && group) loadMore(group);
  }
});

async function switchView(view) {
  if (state.view === view) return;
  state.view = view;
  state.checked.clear();
  state.editing = null;
  state.groups = viewGroups();
  renderViewSwitch();
  renderSessions();
  await reloadSessions();
}

function renderViewSwitch() {
  $("view-sessions").setAttribute("aria-pressed", String(state.view === "sessions"));
  $("view-archived").setAttribute("aria-pressed", String(state.view === "archived"));
  $("sessions-heading-text").textContent = state.view === "archived" ? "Archived" : "Sessions";
}

// The sidebar is rebuilt on every change (a live event included): the focused control and an open
// menu are found again by their data-focus-key / session id, so typing or arrowing is not interrupted.
function renderSessions() {
  const list = $("session-list");
  const focused = document.activeElement?.dataset?.focusKey;
  const caret = document.activeElement?.selectionStart;
  const openMenu = list.querySelector("details[open]")?.dataset.sessionId;
  nearEnd.disconnect();
  list.replaceChildren();
  const shown = state.groups.filter((group) => group.items.length > 0);
  for (const group of shown) {
    const section = el("section", "session-group");
    section.dataset.group = group.key;
    if (state.groups.length > 1 && shown.length > 1) section.append(el("h3", "group-heading", group.heading));
    const items = el("ul", "session-list");
    for (const session of group.items) {
      const editing = state.editing?.sessionId === session.session_id ? state.editing : null;
      items.append(editing ? editItem(session, editing) : sessionItem(session, openMenu === session.session_id));
    }
    section.append(items);
    if (group.cursor) {
      const more = el("button", "secondary load-more", "Load more");
      more.type = "button";
      more.dataset.group = group.key;
      more.addEventListener("click", () => loadMore(group));
      section.append(more);
      nearEnd.observe(more);
    }
    list.append(section);
  }
  const again = focused && list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
  if (again) {
    again.focus();
    if (caret !== undefined && caret !== null && again.setSelectionRange) again.setSelectionRange(caret, caret);
  }
  const empty = shown.length === 0;
  $("empty-state").hidden = !empty;
  $("empty-state").textContent = state.query
    ? `No ${state.view === "archived" ? "archived " : ""}session matches “${state.query}”.`
    : state.view === "archived"
      ? "No archived sessions."
      : "No sessions yet. Start one with “New session”.";
  renderSearchStatus();
  $("session-total").textContent = `(${state.groups.reduce((sum, group) => sum + group.total, 0)})`;
  $("sidebar-status").textContent = "";
  renderBulkBar();
}

const owns = (session) => session.user_id === state.me.user_id;

function sessionItem(session, menuOpen) {
  const item = el("li", "session-item");
  // Bulk archive: only one's own sessions, only where they are not archived yet.
  if (owns(session) && state.view === "sessions") {
    const pick = el("label", "pick");
    const box = el("input");
    box.type = "checkbox";
    box.checked = state.checked.has(session.session_id);
    box.dataset.focusKey = `pick:${session.session_id}`;
    box.addEventListener("change", () => {
      if (box.checked) state.checked.add(session.session_id);
      else state.checked.delete(session.session_id);
      renderBulkBar();
    });
    pick.append(box, el("span", "visually-hidden", `Select ${session.title || "Untitled"}`));
    item.append(pick);
  } else if (state.view === "sessions") {
    item.append(el("span", "pick")); // a colleague's session (an admin's view): aligned, nothing to tick
  }
  const button = el("button", "session");
  button.type = "button";
  button.dataset.sessionId = session.session_id;
  button.dataset.focusKey = `open:${session.session_id}`;
  if (state.selected && state.selected.session_id === session.session_id) {
    button.setAttribute("aria-current", "true");
  }
  const top = el("span", "session-top");
  const title = el("span", session.title ? "session-title" : "session-title untitled");
  title.append(...highlighted(session.title || "Untitled"));
  top.append(title);
  if (session.pinned && state.view === "archived") top.append(el("span", "tag", "pinned"));
  if (session.is_active) {
    const badge = el("span", "badge", "active");
    badge.title = "Active: the newest message is less than 24 hours old";
    top.append(badge);
  }
  const meta = el("span", "session-meta");
  meta.append(el("span", "agent", session.agent_name || "No agent"), " · ", timeElement(session.updated_at));
  const count = el("span", "count", `${session.message_count} ${session.message_count === 1 ? "message" : "messages"}`);
  meta.append(" · ", count);
  if (state.me.role === "admin" && !state.filter) meta.append(" · ", el("span", "owner", userName(session.user_id)));
  button.append(top, meta);
  if (session.snippet) {
    const snippet = el("span", "snippet");
    snippet.append(...highlighted(session.snippet));
    button.append(snippet);
  }
  button.addEventListener("click", () => selectSession(session));
  item.append(button);
  // Only the owner may write a session: an admin reading a colleague's gets no menu.
  if (owns(session)) item.append(sessionMenu(session, menuOpen));
  return item;
}

function sessionMenu(session, open) {
  const menu = el("details", "session-menu");
  menu.dataset.sessionId = session.session_id;
  menu.open = open;
  const summary = el("summary", "menu-button", "⋯");
  summary.setAttribute("aria-label", `Actions for ${session.title || "Untitled"}`);
  summary.dataset.focusKey = `menu:${session.session_id}`;
  const actions = el("div", "menu-items");
  const action = (label, run) => {
    const button = el("button", "secondary", label);
    button.type = "button";
    button.addEventListener("click", run);
    return button;
  };
  const edit = (mode) => () => {
    state.editing = { sessionId: session.session_id, mode, draft: session.title || "" };
    renderSessions();
    $("session-list").querySelector(`[data-focus-key="${mode}:${session.session_id}"]`)?.focus();
  };
  actions.append(
    action(session.pinned ? "Unpin" : "Pin", () => updateSession(session, { pinned: !session.pinned })),
    action(session.archived ? "Unarchive" : "Archive", () => updateSession(session, { archived: !session.archived })),
    action("Rename", edit("rename")),
    action("Delete", edit("delete")),
  );
  menu.append(summary, actions);
  return menu;
}

// A sidebar item being renamed (a title field: Enter saves, Escape cancels) or deleted (confirm or cancel).
function editItem(session, editing) {
  const item = el("li", "session-item editing");
  const form = el("form", "session-edit");
  const cancel = el("button", "secondary", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", () => stopEditing(session));
  const buttons = el("span", "row");
  if (editing.mode === "rename") {
    const id = `rename-${session.session_id}`;
    const label = el("label", "", "New title");
    label.htmlFor = id;
    const input = el("input");
    input.id = id;
    input.value = editing.draft;
    input.maxLength = 255;
    input.dataset.focusKey = `rename:${session.session_id}`;
    input.addEventListener("input", () => {
      editing.draft = input.value;
    });
    const save = el("button", "", "Save");
    save.type = "submit";
    buttons.append(save, cancel);
    form.append(label, input, buttons);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      updateSession(session, { title: input.value.trim() || null });
    });
  } else {
    const count = session.message_count;
    const question = `Delete “${session.title || "Untitled"}” and its ${count} ${count === 1 ? "message" : "messages"}?`;
    const confirm = el("button", "danger", "Delete");
    confirm.type = "submit";
    confirm.dataset.focusKey = `delete:${session.session_id}`;
    buttons.append(confirm, cancel);
    form.append(el("p", "question", question), buttons);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      deleteSession(session);
    });
  }
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") stopEditing(session);
  });
  item.append(form);
  return item;
}

function stopEditing(session) {
  state.editing = null;
  renderSessions();
  focusSession(session.session_id);
}

function focusSession(sessionId) {
  $("session-list").querySelector(`[data-focus-key="open:${sessionId}"]`)?.focus();
}

// PATCH a subset of {title, pinned, archived}; the answer is placed like a live event.
async function updateSession(session, changes) {
  try {
    const updated = await api(`/sessions/${session.session_id}`, { method: "PATCH", body: changes });
    state.editing = null;
    placeSession(updated);
    focusSession(session.session_id);
  } catch (error) {
    handle(error);
  }
}

async function deleteSession(session) {
  try {
    await api(`/sessions/${session.session_id}`, { method: "DELETE" });
    state.editing = null;
    dropSession(session.session_id);
  } catch (error) {
    handle(error);
  }
}

function renderBulkBar() {
  const visible = new Set(state.groups.flatMap((group) => group.items.map((s) => s.session_id)));
  for (const id of state.checked) if (!visible.has(id)) state.checked.delete(id);
  const count = state.checked.size;
  $("bulk-bar").hidden = count === 0;
  $("bulk-count").textContent = `${count} selected`;
}

async function archiveSelected() {
  const ids = [...state.checked];
  const button = $("archive-selected");
  button.disabled = true;
  try {
    const { archived } = await api("/sessions/archive", { method: "POST", body: { session_ids: ids } });
    state.checked.clear();
    await reloadSessions();
    $("sidebar-status").textContent = `Archived ${archived} ${archived === 1 ? "session" : "sessions"}.`;
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
}

// ---------- search (q) ----------

// The API's terms: maximal runs of letters and digits; a word matches when it begins with a term.
const termsOf = (text) => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];

// `text` as DOM nodes with the beginnings of words that match the query's terms in <mark>: text
// nodes only, never HTML.
function highlighted(text) {
  const terms = state.query ? termsOf(state.query) : [];
  if (!terms.length) return [text];
  const nodes = [];
  let done = 0;
  for (const word of text.matchAll(/[\p{L}\p{N}]+/gu)) {
    const lower = word[0].toLowerCase();
    const term = terms.filter((t) => lower.startsWith(t)).sort((a, b) => b.length - a.length)[0];
    if (!term) continue;
    const length = lower.length === word[0].length ? term.length : word[0].length; // case folding changed the length
    nodes.push(text.slice(done, word.index), el("mark", "", word[0].slice(0, length)));
    done = word.index + length;
  }
  nodes.push(text.slice(done));
  return nodes.filter((node) => node !== "");
}

let searchTimer = null;

// Debounced: the search runs once typing pauses; a blank box goes back to the plain list.
function searchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => runSearch($("search-input").value.trim()), SEARCH_DELAY_MS);
}

async function runSearch(query) {
  if (query && termsOf(query).length === 0) {
    $("search-status").textContent = "Type letters or digits to search.";
    return;
  }
  if (query === state.query) return;
  state.query = query;
  state.checked.clear();
  state.editing = null;
  state.groups = viewGroups();
  renderSessions();
  if (query) $("search-status").textContent = "Searching…";
  await reloadSessions();
}

function renderSearchStatus() {
  const results = state.query && state.groups[0];
  if (!results) {
    $("search-status").textContent = "";
    return;
  }
  const count = results.total_capped ? `more than ${results.total.toLocaleString("en")}` : String(results.total);
  $("search-status").textContent = `${count} ${results.total === 1 ? "session matches" : "sessions match"}.`;
}

// Anywhere but in a field, "/" goes to the search box.
function slashToSearch(event) {
  const target = event.target;
  const typing = target.closest?.("input, textarea, select, [contenteditable]");
  if (event.key !== "/" || typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if ($("app-view").hidden) return;
  event.preventDefault();
  $("search-input").focus();
  $("search-input").select();
}

// ---------- live updates (GET /events) ----------

// Follows the sessions the sidebar shows: an admin who picked a user follows that user, else one's own.
function startLive() {
  state.live?.close();
  const { tenant_id: tenantId, user_id: userId } = state.me;
  const token = state.token;
  const follow = state.filter && state.filter !== userId ? `?user_id=${encodeURIComponent(state.filter)}` : "";
  const stream = openStream({
    url: () => `${API_BASE}/api/${tenantId}/events${follow}`,
    headers: () => apiHeaders(token),
    onEvent: (event) => state.live === stream && liveEvent(event),
    onRefused: (status) => state.live === stream && handle(new ApiError(status, "live updates were refused")),
  });
  state.live = stream;
  return stream.ready;
}

function liveEvent({ type, data }) {
  let payload;
  try {
    payload = JSON.parse(data);
  } catch {
    return;
  }
  if (type === "session") placeSession(payload);
  else if (type === "session_deleted") dropSession(payload.session_id);
  else if (type === "message") addMessage(payload);
  else if (type === "resync") resync();
}

// Nothing is replayed after a reconnection: re-read the sidebar and the open chat.
async function resync() {
  await reloadSessions();
  if (!state.selected) return;
  const found = state.groups.flatMap((group) => group.items).find((s) => s.session_id === state.selected.session_id);
  state.selected = found || state.selected;
  state.messages = [];
  await loadMessages();
}

// Precise to the microsecond (the API's fractions vary in length), for sorting as the API does.
const sortable = (iso) => iso.replace(/(\.\d+)?Z$/, (_, fraction) => `${(fraction || ".").padEnd(7, "0")}Z`);

function before(a, b) {
  const [x, y] = [sortable(a.updated_at), sortable(b.updated_at)];
  return x === y ? a.session_id > b.session_id : x > y;
}

// A session created or changed (by this page or, live, by any other client): updated in place, moved
// where the order (newest update first) puts it, and out of a group it no longer belongs to (pinned,
// archived). A group that should hold it but does not yet is re-read: the API knows whether it is new
// and where the loaded pages end.
function placeSession(session) {
  if (state.selected?.session_id === session.session_id) {
    state.selected = session;
    renderChatHeader();
  }
  const groups = state.groups;
  const stale = [];
  for (const group of groups) {
    const index = group.items.findIndex((s) => s.session_id === session.session_id);
    const belongs = group.accepts(session, index >= 0);
    if (index >= 0) session = { ...session, snippet: session.snippet ?? group.items[index].snippet };
    if (index >= 0) group.items.splice(index, 1);
    if (index >= 0 && !belongs) group.total = Math.max(0, group.total - 1);
    if (!belongs) continue;
    if (index < 0) {
      stale.push(group);
      continue;
    }
    const at = group.items.findIndex((s) => before(session, s));
    if (at >= 0) group.items.splice(at, 0, session);
    else if (!group.cursor) group.items.push(session); // past the loaded pages it comes with the next one
  }
  renderSessions();
  if (stale.length) refresh(groups, stale);
}

async function refresh(groups, stale) {
  try {
    await Promise.all(stale.map((group) => reloadGroup(group, group.items.length + 1)));
  } catch (error) {
    handle(error);
    return;
  }
  if (groups === state.groups) renderSessions();
}

function dropSession(sessionId) {
  const group = state.groups.find((g) => g.items.some((s) => s.session_id === sessionId));
  if (group) {
    group.items = group.items.filter((s) => s.session_id !== sessionId);
    group.total = Math.max(0, group.total - 1);
  }
  if (state.editing?.sessionId === sessionId) state.editing = null;
  if (state.selected?.session_id === sessionId) {
    state.selected = null;
    renderChat();
    $("chat-placeholder").textContent = "That session was deleted.";
  }
  renderSessions();
  if (!group) refresh(state.groups, state.groups); // not loaded here: only the API knows which total moves
}

// ---------- the conversation pane: newest messages first read, older ones on scrolling up ----------

async function selectSession(session) {
  if (state.access) closeAccessLog();
  state.selected = session;
  state.messages = [];
  state.olderCursor = null;
  for (const button of document.querySelectorAll(".session")) {
    if (button.dataset.sessionId === session.session_id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  renderChat();
  $("chat-meta").textContent = "Loading messages…";
  // On a phone the conversation sits below the sidebar: bring it into view.
  if (window.matchMedia("(max-width: 720px)").matches) $("chat").scrollIntoView({ block: "start" });
  await loadMessages();
}

// The newest page (order=desc), shown oldest first, scrolled to the end.
async function loadMessages() {
  const session = state.selected;
  let page;
  try {
    page = await api(`/sessions/${session.session_id}/messages?order=desc&limit=${MESSAGE_PAGE}`);
  } catch (error) {
    if (state.selected === session) {
      state.selected = null;
      renderChat();
    }
    handle(error);
    // A session that vanished (deleted elsewhere) leaves the sidebar too.
    if (error instanceof ApiError && error.status === 404) dropSession(session.session_id);
    return;
  }
  if (state.selected !== session) return; // another session was picked meanwhile
  const newer = state.messages; // live ones that came while this page was read
  const seen = new Set(page.messages.map((m) => m.message_id));
  state.messages = [...page.messages.reverse(), ...newer.filter((m) => !seen.has(m.message_id))];
  state.olderCursor = page.next_cursor;
  renderChat();
  const history = $("history");
  history.scrollTop = history.scrollHeight;
}

async function loadOlder() {
  const session = state.selected;
  if (!session || !state.olderCursor || state.loadingOlder) return;
  state.loadingOlder = true;
  try {
    const params = new URLSearchParams({ order: "desc", limit: String(MESSAGE_PAGE), cursor: state.olderCursor });
    const page = await api(`/sessions/${session.session_id}/messages?${params}`);
    if (state.selected !== session) return;
    const history = $("history");
    const fromBottom = history.scrollHeight - history.scrollTop;
    const seen = new Set(state.messages.map((m) => m.message_id));
    state.messages.unshift(...page.messages.reverse().filter((m) => !seen.has(m.message_id)));
    state.olderCursor = page.next_cursor;
    renderChat();
    history.scrollTop = history.scrollHeight - fromBottom; // the same message stays in view
  } catch (error) {
    handle(error);
  } finally {
    state.loadingOlder = false;
  }
}

// Scrolling up to the "Load older messages" button loads them.
const nearTop = new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) loadOlder();
});

function addMessage(message) {
  if (state.selected?.session_id !== message.session_id) return;
  if (state.messages.some((m) => m.message_id === message.message_id)) return;
  const history = $("history");
  const atEnd = history.scrollHeight - history.scrollTop - history.clientHeight < 40;
  state.messages.push(message);
  renderChat();
  if (atEnd) history.scrollTop = history.scrollHeight;
}

function renderChatHeader() {
  const session = state.selected;
  $("chat-title").textContent = session.title || "Untitled";
  const owner = state.me.role === "admin" ? ` · owner: ${userName(session.user_id)}` : "";
  const count = Math.max(session.message_count, state.messages.length);
  const flags = [session.pinned ? " · pinned" : "", session.archived ? " · archived" : ""].join("");
  $("chat-meta").textContent =
    `${session.agent_name || "No agent"} · ${count} ${count === 1 ? "message" : "messages"}${flags}${owner}`;
}

function renderChat() {
  const session = state.selected;
  $("composer-hint").textContent = "";
  $("message-input").removeAttribute("aria-invalid");
  const list = $("message-list");
  list.replaceChildren();
  $("chat-placeholder").hidden = Boolean(session);
  const older = $("load-older");
  older.hidden = !session || !state.olderCursor;
  nearTop.disconnect();
  if (!older.hidden) nearTop.observe(older);
  if (!session) {
    $("chat-title").textContent = "Select a session";
    $("chat-meta").textContent = "";
    $("chat-placeholder").textContent = "Pick a session in the sidebar to read its history.";
    $("composer").hidden = true;
    $("readonly-note").hidden = true;
    return;
  }
  renderChatHeader();
  for (const message of state.messages) {
    const item = el("li", `message role-${message.role}`);
    const head = el("div", "message-head");
    head.append(el("span", "role", message.role), timeElement(message.created_at, "message-time"));
    item.append(head, el("p", "content", message.content));
    list.append(item);
  }
  if (state.messages.length === 0) list.append(el("li", "empty", "No messages yet. Write the first one below."));
  const own = owns(session);
  $("composer").hidden = !own;
  $("readonly-note").hidden = own;
}

async function sendMessage(event) {
  event.preventDefault();
  const input = $("message-input");
  const content = input.value;
  const session = state.selected;
  if (!session) return;
  if (!content.trim()) {
    // Nothing is sent: say why, next to the box.
    $("composer-hint").textContent = "Type a message first: a blank message is not sent.";
    input.setAttribute("aria-invalid", "true");
    input.focus();
    return;
  }
  const button = $("send");
  button.disabled = true;
  try {
    const message = await api(`/sessions/${session.session_id}/messages`, {
      method: "POST",
      body: { role: "user", content },
    });
    input.value = "";
    addMessage(message); // unless its live event came first
    await reloadSessions();
    const found = state.groups.flatMap((group) => group.items).find((s) => s.session_id === session.session_id);
    if (found && state.selected?.session_id === session.session_id) {
      state.selected = found;
      renderChatHeader();
    }
    const history = $("history");
    history.scrollTop = history.scrollHeight;
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
    input.focus();
  }
}

async function newSession(event) {
  event.preventDefault();
  const agentId = $("agent-select").value;
  const button = $("new-session");
  button.disabled = true;
  try {
    const created = await api("/sessions", { method: "POST", body: agentId ? { agent_id: agentId } : {} });
    if (state.view !== "sessions") await switchView("sessions");
    else placeSession(created);
    await selectSession(created);
    $("message-input").focus();
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
}

// Arrow keys move between sessions (across the groups); Home/End jump to the first/last one; Enter opens.
function sessionKeys(event) {
  const buttons = [...document.querySelectorAll(".session")];
  const index = buttons.indexOf(document.activeElement);
  if (index < 0) return;
  const target = {
    ArrowDown: Math.min(index + 1, buttons.length - 1),
    ArrowUp: Math.max(index - 1, 0),
    Home: 0,
    End: buttons.length - 1,
  }[event.key];
  if (target === undefined) return;
  event.preventDefault();
  buttons[target].focus();
}

// ---------- the access log: who read my chats (a supporter), the tenant's admin reads (an admin) ----------

const ACTIONS = {
  session: "opened the session",
  messages: "read its messages",
  events: "followed it live",
  export: "exported it",
  search: "saw it in search results",
};

async function openAccessLog() {
  state.access = { entries: [], total: 0, titles: new Map() };
  const admin = state.me.role === "admin";
  $("access-title").textContent = admin ? "Access log" : "Who read my chats";
  $("access-intro").textContent = admin
    ? "Every read of a session by an admin who does not own it, recorded by the database, newest first."
    : "Every time an admin of your organisation read one of your sessions, newest first.";
  $("chat").hidden = true;
  $("access-view").hidden = false;
  $("access-button").setAttribute("aria-expanded", "true");
  $("access-rows").replaceChildren();
  $("access-view").focus();
  await loadAccessLog();
}

function closeAccessLog() {
  state.access = null;
  $("access-view").hidden = true;
  $("chat").hidden = false;
  $("access-button").setAttribute("aria-expanded", "false");
}

async function loadAccessLog() {
  const access = state.access;
  if (!access) return;
  let page;
  try {
    page = await api(`/access-log?limit=50&offset=${access.entries.length}`);
    if (state.me.role !== "admin") await loadTitles(access, page.entries);
  } catch (error) {
    handle(error);
    return;
  }
  if (state.access !== access) return;
  access.entries.push(...page.entries);
  access.total = page.total;
  $("access-more").hidden = !page.has_more;
  renderAccessLog();
}

// A supporter's own sessions are named by their titles (reading one's own session records nothing).
// An admin's entries name the owner only: reading a colleague's session for its title would be a read.
async function loadTitles(access, entries) {
  const known = new Map(state.groups.flatMap((group) => group.items).map((s) => [s.session_id, s.title]));
  for (const sessionId of new Set(entries.map((entry) => entry.session_id))) {
    if (access.titles.has(sessionId)) continue;
    if (known.has(sessionId)) {
      access.titles.set(sessionId, known.get(sessionId) || "Untitled");
      continue;
    }
    try {
      const session = await api(`/sessions/${sessionId}`);
      access.titles.set(sessionId, session.title || "Untitled");
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
      access.titles.set(sessionId, "a deleted session");
    }
  }
}

function renderAccessLog() {
  const access = state.access;
  const admin = state.me.role === "admin";
  const rows = access.entries.map((entry) => {
    const row = el("tr");
    const reader = admin ? userName(entry.reader_id) : `an admin (${entry.reader_id.slice(0, 8)})`;
    const session = admin
      ? `${userName(entry.owner_id)}'s session ${entry.session_id.slice(0, 8)}`
      : access.titles.get(entry.session_id) || entry.session_id.slice(0, 8);
    const when = el("td");
    when.append(timeElement(entry.at));
    row.append(when, el("td", "reader", reader), el("td", "access-session", session), el("td", "action", ACTIONS[entry.action] || entry.action));
    return row;
  });
  $("access-rows").replaceChildren(...rows);
  $("access-empty").hidden = access.entries.length > 0;
  $("access-empty").textContent = admin ? "No admin has read another user's session yet." : "No admin has read your sessions.";
}

// ---------- wiring ----------

function init() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token-input").value);
  });
  $("dev-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const who = JSON.parse($("dev-user").value);
      const { token } = await request("/dev/token", { method: "POST", body: who, token: null });
      await signIn(token);
    } catch (error) {
      showSignIn(describe(error));
    }
  });
  $("signout").addEventListener("click", () => signOut());
  $("access-button").addEventListener("click", () => (state.access ? closeAccessLog() : openAccessLog()));
  $("access-close").addEventListener("click", () => {
    closeAccessLog();
    $("access-button").focus();
  });
  $("access-more").addEventListener("click", loadAccessLog);
  $("banner-close").addEventListener("click", hideBanner);
  $("load-older").addEventListener("click", loadOlder);
  $("composer").addEventListener("submit", sendMessage);
  $("message-input").addEventListener("input", () => {
    $("composer-hint").textContent = "";
    $("message-input").removeAttribute("aria-invalid");
  });
  $("message-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("composer").requestSubmit();
  });
  $("new-session-form").addEventListener("submit", newSession);
  $("session-list").addEventListener("keydown", sessionKeys);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    runSearch($("search-input").value.trim());
  });
  $("search-input").addEventListener("input", searchInput);
  $("search-input").addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      event.preventDefault();
      document.querySelector(".session")?.focus();
    }
  });
  document.addEventListener("keydown", slashToSearch);
  $("view-sessions").addEventListener("click", () => switchView("sessions"));
  $("view-archived").addEventListener("click", () => switchView("archived"));
  $("archive-selected").addEventListener("click", archiveSelected);
  $("clear-selection").addEventListener("click", () => {
    state.checked.clear();
    renderSessions();
  });
  $("user-filter").addEventListener("change", async (event) => {
    state.filter = event.target.value;
    state.selected = null;
    state.groups = viewGroups();
    renderChat();
    await startLive();
    await reloadSessions();
  });
  window.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    handle(event.reason);
  });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else showSignIn();
}

init();
