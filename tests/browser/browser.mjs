// Launching the system Chromium through playwright-core (which never downloads a browser of its own).
import { chromium } from "playwright-core";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

/** A fresh headless Chromium with a throw-away profile; returns {browser, close}. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "td-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Open the ComfyUI frontend at `base` in `page` and wait until its graph, LiteGraph and the pack's extension named
 * `extension` are there, then (briefly) for the default workflow's nodes. `window.tdApp()` gives the app whichever way
 * this frontend exposes it.
 */
export async function openComfyUI(page, base, extension) {
  await page.addInitScript(() => { window.tdApp = () => window.comfyAPI?.app?.app ?? window.app; });
  await page.goto(base);
  await page.waitForFunction(() => window.tdApp()?.graph && window.LiteGraph, null, { timeout: 120000 });
  await page.waitForFunction((name) => [...(window.tdApp().extensions ?? [])].some((e) => e.name === name),
    extension, { timeout: 60000 });
  await page.waitForFunction(() => window.tdApp().graph.nodes.length > 0, null, { timeout: 20000 }).catch(() => {});
}

// Our scripts, by file name (served from /js/ on the harness page, from /extensions/<pack folder>/ by ComfyUI).
const OWN_SCRIPTS = new Set(readdirSync(new URL("../../js/", import.meta.url)).filter((f) => f.endsWith(".js")));

/** Whether a console message's source URL is one of the pack's own scripts. */
export function isOwnScript(url) {
  const m = /\/([^/?#]+?)(?:\.js)?(?:[?#].*)?$/.exec(url ?? "");
  return !!m && OWN_SCRIPTS.has(`${m[1]}.js`) && /\/(js|extensions\/[^/]+)\//.test(url);
}

/**
 * Fail the run on any page error or console error, and on console warnings raised by the pack's own scripts (a
 * deprecation or performance warning from the editors must not pass quietly either).
 */
export function collectErrors(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    const url = m.location()?.url ?? "";
    if (m.type() === "error") errors.push(`console: ${m.text()}${url ? ` (${url})` : ""}`);
    else if (m.type() === "warning" && isOwnScript(url)) errors.push(`console warning: ${m.text()} (${url})`);
  });
  return errors;
}

export async function drag(page, from, to, steps = 6) {
  await page.mouse.move(from[0], from[1]);
  await page.mouse.down();
  await page.mouse.move(to[0], to[1], { steps });
  await page.mouse.up();
}
