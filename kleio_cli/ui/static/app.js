// Kleio's web view: a single page whose hash names what it shows.
//
//   #/                          the trials (filters and sort in the hash too)
//   #/trial/ID                  one trial, its output live while it runs
//   #/chart?ids=a,b&y=loss&x=step
//   #/compare?ids=a,b,c
//
// Each page is a function (root, params) that fills ``root`` and returns what stops it
// (its streams, timers and listeners) when the hash changes.

import { chartPage } from "./chart.js";
import { comparePage } from "./compare.js";
import { trialPage } from "./trial.js";
import { trialsPage } from "./trials.js";
import { ApiError, h, parseHash, setBannerNode } from "./util.js";

const ROUTES = [
  [/^\/?$/, "trials", trialsPage],
  [/^\/trial\/([^/]+)$/, "trials", trialPage],
  [/^\/chart$/, "chart", chartPage],
  [/^\/compare$/, "compare", comparePage],
];

let stop = null;
let shown = 0; // which navigation is current: a slow page left behind does not draw

async function route() {
  if (stop) {
    try {
      stop();
    } catch (error) {
      console.error(error);
    }
    stop = null;
  }
  const current = ++shown;
  const [path, params] = parseHash(location.hash);
  const root = document.getElementById("app");
  root.replaceChildren();
  window.scrollTo(0, 0);
  const found = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", Boolean(found) && link.dataset.nav === found[1]);
  }
  if (!found) {
    root.append(h("p", { class: "error" }, `No such page: ${path}`), h("a", { href: "#/" }, "All trials"));
    return;
  }
  const [pattern, , page] = found;
  const match = path.match(pattern);
  const alive = () => current === shown;
  try {
    const stopping = await page(root, params, { match, alive });
    if (alive()) stop = stopping || null;
    else if (stopping) stopping();
  } catch (error) {
    if (!alive() || error.name === "AbortError") return;
    if (!(error instanceof ApiError)) console.error(error); // an API's error is shown as it is
    const message = error instanceof ApiError ? error.message : `${error.name}: ${error.message}`;
    root.append(h("p", { class: "error", dataset: { testid: "page-error" } }, message));
  }
}

function start() {
  setBannerNode(document.getElementById("banner"));
  // The first page's response set the cookie: the token need not stay in the address bar.
  const query = new URLSearchParams(location.search);
  if (query.has("token")) {
    query.delete("token");
    const rest = query.toString();
    history.replaceState(null, "", `${location.pathname}${rest ? `?${rest}` : ""}${location.hash}`);
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
