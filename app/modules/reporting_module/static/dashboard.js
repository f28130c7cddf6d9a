// The dashboard: a login form, then panels read from this server's API with the bearer
// token kept in this tab's sessionStorage. The pictures arrive as SVG rendered by the server.
"use strict";

const TOKEN = "credit-dashboard-token";
const $ = (id) => document.getElementById(id);

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN), Accept: "application/json" },
  });
  if (response.status === 401) {
    signOut();
    throw new Error("your session ended: sign in again");
  }
  if (!response.ok) {
    let message = response.status + "";
    try { message = (await response.json()).error.message; } catch (ignored) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function showSvg(element, markup) {
  // Parsed as SVG from this server, then placed: no HTML parsing of the response.
  const svg = new DOMParser().parseFromString(markup, "image/svg+xml").documentElement;
  element.replaceChildren(document.importNode(svg, true));
}

async function loadVolumes() {
  const days = $("days").value;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const query = "days=" + encodeURIComponent(days) + "&tz=" + encodeURIComponent(tz);
  try {
    showSvg($("volumes"), (await api("/dashboard/panels/volumes.svg?" + query)).svg);
  } catch (error) {
    // A zone this server does not know: chart in UTC instead.
    showSvg($("volumes"), (await api("/dashboard/panels/volumes.svg?days=" + days)).svg);
  }
}

async function loadFigures() {
  const balances = await api("/reports/balances");
  $("outstanding").textContent = balances.outstanding.toLocaleString();
  $("trial").textContent = "issued " + balances.issued.toLocaleString() + ", redeemed " +
    balances.redeemed.toLocaleString() + ", " + balances.wallets + " wallets: " +
    (balances.balanced ? "balanced" : "NOT BALANCED");
}

async function loadDead() {
  const body = $("dead").querySelector("tbody");
  try {
    const page = await api("/events/deliveries?status=dead&limit=50");
    $("dead-count").textContent = page.items.length + (page.next_cursor ? "+" : "");
    body.replaceChildren(...page.items.map((item) => {
      const row = document.createElement("tr");
      for (const value of [item.id, item.event_type, item.subscriber, item.attempts, item.last_error || ""]) {
        const cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      }
      return row;
    }));
  } catch (error) {
    $("dead-count").textContent = "–";
    body.replaceChildren();
    const row = body.insertRow();
    row.insertCell().textContent = error.status === 403 ? "visible to admins only" : error.message;
  }
}

async function refresh() {
  $("panel-error").textContent = "";
  const jobs = [loadFigures(), loadVolumes(), loadDead(),
    api("/dashboard/panels/modules.svg").then((panel) => showSvg($("modules"), panel.svg))];
  for (const result of await Promise.allSettled(jobs)) {
    if (result.status === "rejected") $("panel-error").textContent = result.reason.message;
  }
  document.body.dataset.loaded = "true";
}

function signedIn(username) {
  $("login").hidden = true;
  $("panels").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = username || "";
  refresh();
}

function signOut() {
  sessionStorage.removeItem(TOKEN);
  $("panels").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("who").textContent = "";
}

async function logIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  const body = await response.json();
  if (!response.ok) {
    $("login-error").textContent = body.error ? body.error.message : "sign-in failed";
    return;
  }
  sessionStorage.setItem(TOKEN, body.access_token);
  const me = await api("/users/me");
  if (me.role !== "admin" && me.role !== "auditor") {
    signOut();
    $("login-error").textContent = "the dashboard is for admins and auditors";
    return;
  }
  sessionStorage.setItem(TOKEN + "-user", me.username);
  signedIn(me.username);
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", logIn);
  $("logout").addEventListener("click", async () => {
    await fetch("/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN) } });
    signOut();
  });
  $("days").addEventListener("change", () => loadVolumes().catch((e) => { $("panel-error").textContent = e.message; }));
  if (sessionStorage.getItem(TOKEN)) signedIn(sessionStorage.getItem(TOKEN + "-user"));
});
