// The session sidebar: sign in, list sessions (load more), read and write a session's messages, live.
// Everything the API returns is user data: it is only ever put on the page with textContent.

import { openStream } from "./live.js";

const PAGE_SIZE = 10;
const MESSAGE_PAGE = 50;
const TOKEN_KEY = "chat-sessions.token";
const API_BASE = (document.querySelector('meta[name="api-base"]')?.content || "").replace(/\/$/, "");

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  me: null,
  filter: "", // "" = the API's default (own sessions; an admin's whole tenant), else a user_id
  sessions: [],
  total: 0,
  hasMore: false,
  selected: null,
  messages: [],
  messagesHaveMore: false,
  agents: [],
  knownUsers: new Set(),
  live: null, // the open event stream (live.js)
  editing: null, // {sessionId, mode: "rename" | "delete", draft}: a sidebar item being renamed or deleted
};

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

async function request(path, { method = "GET", body, token = state.token } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const readAfter = sessionStorage.getItem(READ_AFTER_KEY);
  if (readAfter) headers["X-Read-After"] = readAfter;
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

function shortUser(userId) {
  if (state.me && userId === state.me.user_id) return "me";
  return `user ${userId.slice(0, 8)}`;
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
  Object.assign(state, {
    token: null,
    me: null,
    filter: "",
    sessions: [],
    selected: null,
    messages: [],
    agents: [],
    knownUsers: new Set(),
    live: null,
    editing: null,
  });
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
  state.knownUsers = new Set([me.user_id]);
  renderChat();
  await Promise.all([loadAgents(), me.role === "admin" ? discoverUsers() : null, startLive()]);
  await reloadSessions(PAGE_SIZE);
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

// The contract has no users route: an admin's user list is derived from the tenant's sessions.
async function discoverUsers() {
  try {
    const page = await api("/sessions?limit=100");
    for (const session of page.sessions) state.knownUsers.add(session.user_id);
  } catch (error) {
    handle(error);
  }
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
  for (const userId of [...state.knownUsers].sort()) {
    if (userId === state.me.user_id) continue;
    const option = el("option", "", shortUser(userId));
    option.value = userId;
    select.append(option);
  }
  select.value = current;
}

function sessionsQuery(limit, offset) {
  const params = new URLSearchParams({ limit: String(limit), offset: String(offset) });
  if (state.filter) params.set("user_id", state.filter);
  return `/sessions?${params}`;
}

// (Re)load the first `count` sessions, e.g. after a write moved one to the top.
async function reloadSessions(count) {
  const wanted = Math.max(PAGE_SIZE, count);
  const sessions = [];
  let page;
  try {
    do {
      page = await api(sessionsQuery(Math.min(100, wanted - sessions.length), sessions.length));
      sessions.push(...page.sessions);
    } while (page.has_more && sessions.length < wanted);
  } catch (error) {
    handle(error);
    return;
  }
  state.sessions = sessions;
  state.total = page.total;
  state.hasMore = page.has_more;
  renderSessions();
}

async function loadMore() {
  const button = $("load-more");
  button.disabled = true;
  $("sidebar-status").textContent = "Loading…";
  try {
    const page = await api(sessionsQuery(PAGE_SIZE, state.sessions.length));
    const seen = new Set(state.sessions.map((s) => s.session_id));
    state.sessions.push(...page.sessions.filter((s) => !seen.has(s.session_id)));
    state.total = page.total;
    state.hasMore = page.has_more;
    renderSessions();
    $("sidebar-status").textContent = `Loaded ${page.sessions.length} more.`;
  } catch (error) {
    $("sidebar-status").textContent = "";
    handle(error);
  } finally {
    button.disabled = false;
  }
}

// The sidebar is rebuilt on every change (a live event included): the focused control and an open
// menu are found again by their data-focus-key / session id, so typing or arrowing is not interrupted.
function renderSessions() {
  const list = $("session-list");
  const focused = document.activeElement?.dataset?.focusKey;
  const caret = document.activeElement?.selectionStart;
  const openMenu = list.querySelector("details[open]")?.dataset.sessionId;
  list.replaceChildren();
  for (const session of state.sessions) {
    if (state.me.role === "admin" && !state.knownUsers.has(session.user_id)) {
      state.knownUsers.add(session.user_id);
      renderUserFilter();
    }
    const editing = state.editing?.sessionId === session.session_id ? state.editing : null;
    list.append(editing ? editItem(session, editing) : sessionItem(session, openMenu === session.session_id));
  }
  const again = focused && list.querySelector(`[data-focus-key="${CSS.escape(focused)}"]`);
  if (again) {
    again.focus();
    if (caret !== undefined && caret !== null && again.setSelectionRange) again.setSelectionRange(caret, caret);
  }
  $("empty-state").hidden = state.sessions.length > 0;
  $("session-total").textContent = `(${state.total})`;
  $("load-more").hidden = !state.hasMore;
  $("sidebar-status").textContent = "";
}

function sessionItem(session, menuOpen) {
  const item = el("li", "session-item");
  const button = el("button", "session");
  button.type = "button";
  button.dataset.sessionId = session.session_id;
  button.dataset.focusKey = `open:${session.session_id}`;
  if (state.selected && state.selected.session_id === session.session_id) {
    button.setAttribute("aria-current", "true");
  }
  const top = el("span", "session-top");
  top.append(el("span", session.title ? "session-title" : "session-title untitled", session.title || "Untitled"));
  if (session.is_active) {
    const badge = el("span", "badge", "active");
    badge.title = "Active: the newest message is less than 24 hours old";
    top.append(badge);
  }
  const meta = el("span", "session-meta");
  meta.append(el("span", "agent", session.agent_name || "No agent"), " · ", timeElement(session.updated_at));
  const count = el("span", "count", `${session.message_count} ${session.message_count === 1 ? "message" : "messages"}`);
  meta.append(" · ", count);
  if (state.me.role === "admin" && !state.filter) meta.append(" · ", el("span", "owner", shortUser(session.user_id)));
  button.append(top, meta);
  button.addEventListener("click", () => selectSession(session));
  item.append(button);
  // Only the owner may write a session: an admin reading a colleague's gets no menu.
  if (session.user_id === state.me.user_id) item.append(sessionMenu(session, menuOpen));
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
  const action = (label, mode) => {
    const button = el("button", "secondary", label);
    button.type = "button";
    button.addEventListener("click", () => {
      state.editing = { sessionId: session.session_id, mode, draft: session.title || "" };
      renderSessions();
      $("session-list").querySelector(`[data-focus-key="${mode}:${session.session_id}"]`)?.focus();
    });
    return button;
  };
  actions.append(action("Rename", "rename"), action("Delete", "delete"));
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
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") stopEditing(session);
    });
    const save = el("button", "", "Save");
    save.type = "submit";
    form.append(label, input, el("span", "row", ""));
    form.lastChild.append(save, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      renameSession(session, input.value);
    });
  } else {
    const count = session.message_count;
    const question = `Delete “${session.title || "Untitled"}” and its ${count} ${count === 1 ? "message" : "messages"}?`;
    const confirm = el("button", "danger", "Delete");
    confirm.type = "submit";
    confirm.dataset.focusKey = `delete:${session.session_id}`;
    form.append(el("p", "question", question), el("span", "row", ""));
    form.lastChild.append(confirm, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      deleteSession(session);
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") stopEditing(session);
    });
  }
  item.append(form);
  return item;
}

function stopEditing(session) {
  state.editing = null;
  renderSessions();
  $("session-list").querySelector(`[data-focus-key="open:${session.session_id}"]`)?.focus();
}

async function renameSession(session, title) {
  try {
    const renamed = await api(`/sessions/${session.session_id}`, { method: "PATCH", body: { title: title.trim() || null } });
    state.editing = null;
    placeSession(renamed);
    $("session-list").querySelector(`[data-focus-key="open:${session.session_id}"]`)?.focus();
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

// ---------- live updates (GET /events) ----------

// Follows the sessions the sidebar shows: an admin who picked a user follows that user, else one's own.
function startLive() {
  state.live?.close();
  const { tenant_id: tenantId, user_id: userId } = state.me;
  const token = state.token;
  const follow = state.filter && state.filter !== userId ? `?user_id=${encodeURIComponent(state.filter)}` : "";
  const stream = openStream({
    url: () => `${API_BASE}/api/${tenantId}/events${follow}`,
    headers: () => ({ Authorization: `Bearer ${token}` }),
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
  if (type === "session") placeSession(payload, { live: true });
  else if (type === "session_deleted") dropSession(payload.session_id);
  else if (type === "message") addMessage(payload);
  else if (type === "resync") resync();
}

// Nothing is replayed after a reconnection: re-read the sidebar and the open chat.
async function resync() {
  await reloadSessions(state.sessions.length);
  if (!state.selected) return;
  state.selected = state.sessions.find((s) => s.session_id === state.selected.session_id) || state.selected;
  state.messages = [];
  await loadMessages();
}

// Precise to the microsecond (the API's fractions vary in length), for sorting as the API does.
const sortable = (iso) => iso.replace(/(\.\d+)?Z$/, (_, fraction) => `${(fraction || ".").padEnd(7, "0")}Z`);

function before(a, b) {
  const [x, y] = [sortable(a.updated_at), sortable(b.updated_at)];
  return x === y ? a.session_id > b.session_id : x > y;
}

// A session created or changed (by this page or, live, by any other client): updated in place and moved
// where the list's order (newest update first) puts it. One the sidebar does not hold yet is re-read
// from the API, which knows whether it is new and where the loaded pages end.
function placeSession(session, { live = false } = {}) {
  const index = state.sessions.findIndex((s) => s.session_id === session.session_id);
  if (index < 0) {
    if (live) reloadSessions(state.sessions.length + 1);
    return;
  }
  state.sessions.splice(index, 1);
  const at = state.sessions.findIndex((s) => before(session, s));
  state.sessions.splice(at < 0 ? state.sessions.length : at, 0, session);
  if (state.selected?.session_id === session.session_id) {
    state.selected = session;
    renderChatHeader();
  }
  renderSessions();
}

function dropSession(sessionId) {
  const index = state.sessions.findIndex((s) => s.session_id === sessionId);
  if (index >= 0) {
    state.sessions.splice(index, 1);
    state.total = Math.max(0, state.total - 1);
  }
  if (state.editing?.sessionId === sessionId) state.editing = null;
  if (state.selected?.session_id === sessionId) {
    state.selected = null;
    renderChat();
    $("chat-placeholder").textContent = "That session was deleted.";
  }
  renderSessions();
}

function addMessage(message) {
  if (state.selected?.session_id !== message.session_id) return;
  if (state.messages.some((m) => m.message_id === message.message_id)) return;
  if (state.messagesHaveMore) return; // not loaded up to the end: it comes with the next page
  state.messages.push(message);
  renderChat();
}

// ---------- the conversation pane ----------

async function selectSession(session) {
  state.selected = session;
  state.messages = [];
  state.messagesHaveMore = false;
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

async function loadMessages() {
  const session = state.selected;
  try {
    const params = new URLSearchParams({ limit: String(MESSAGE_PAGE), offset: String(state.messages.length) });
    const page = await api(`/sessions/${session.session_id}/messages?${params}`);
    if (state.selected !== session) return; // another session was picked meanwhile
    const seen = new Set(state.messages.map((m) => m.message_id)); // a live one may have come first
    state.messages.push(...page.messages.filter((m) => !seen.has(m.message_id)));
    state.messagesHaveMore = page.has_more;
  } catch (error) {
    if (state.selected === session) {
      state.selected = null;
      renderChat();
    }
    handle(error);
    // A session that vanished (deleted elsewhere) leaves the sidebar too.
    if (error instanceof ApiError && error.status === 404) await reloadSessions(state.sessions.length);
    return;
  }
  renderChat();
}

function renderChatHeader() {
  const session = state.selected;
  $("chat-title").textContent = session.title || "Untitled";
  const owner = state.me.role === "admin" ? ` · owner: ${shortUser(session.user_id)}` : "";
  const count = Math.max(session.message_count, state.messages.length);
  $("chat-meta").textContent = `${session.agent_name || "No agent"} · ${count} ${count === 1 ? "message" : "messages"}${owner}`;
}

function renderChat() {
  const session = state.selected;
  $("composer-hint").textContent = "";
  $("message-input").removeAttribute("aria-invalid");
  const list = $("message-list");
  list.replaceChildren();
  $("chat-placeholder").hidden = Boolean(session);
  $("load-more-messages").hidden = !session || !state.messagesHaveMore;
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
  const own = session.user_id === state.me.user_id;
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
    await reloadSessions(state.sessions.length);
    state.selected = state.sessions.find((s) => s.session_id === session.session_id) || session;
    renderSessions();
    renderChat();
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
    await reloadSessions(state.sessions.length + 1);
    await selectSession(state.sessions.find((s) => s.session_id === created.session_id) || created);
    $("message-input").focus();
  } catch (error) {
    handle(error);
  } finally {
    button.disabled = false;
  }
}

// Arrow keys move between sessions; Home/End jump to the first/last one.
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
  $("banner-close").addEventListener("click", hideBanner);
  $("load-more").addEventListener("click", loadMore);
  $("load-more-messages").addEventListener("click", loadMessages);
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
  $("user-filter").addEventListener("change", async (event) => {
    state.filter = event.target.value;
    state.selected = null;
    renderChat();
    await startLive();
    await reloadSessions(PAGE_SIZE);
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
