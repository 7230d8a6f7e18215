// Opens example workflows in the real ComfyUI frontend (tests/browser/test_example_layout_in_browser.py starts the server) and
// reads every node's rectangle, title bar included, in graph units: once the workflow has loaded and its nodes hold
// still, and again once every output node shows its result. A case either runs for real (queues the prompt and
// waits for it) or hands the frontend the results a run would report ("executed" messages naming files the test put
// in the output folder), so that workflows whose models are absent are checked too.
// Usage: node drive_example_layout.mjs BASE_URL CASES_JSON
// CASES_JSON: a file with [{name, renderer: "classic"|"vue", workflow: {...}, run: bool,
//   outputs: {node id: output message}, shown: [ids of other nodes whose picture to wait for], screenshot: path|null}]
// Prints JSON: per case {load, after: [{id, type, rect: [x1, y1, x2, y2]}], shown: {node id: [w, h]}, ds, history},
// and the page's errors.
import { readFileSync } from "node:fs";
import { collectErrors, launch, openComfyUI } from "./browser.mjs";

const [base, casesPath] = process.argv.slice(2);
if (!casesPath) throw new Error("usage: drive_example_layout.mjs BASE_URL CASES_JSON");
const cases = JSON.parse(readFileSync(casesPath, "utf8"));

// Console errors of the frontend itself that say nothing about the pack (as in drive_comfyui.mjs).
const FOREIGN = [
  /^console: Failed to load resource/,
  /^console: \[Jobs API\] Error fetching jobs: JobsApiError: Failed to fetch jobs: 400\b/,
  /^console: (Connecting to|Fetch API cannot load) '?https:\/\/huggingface\.co\/\S+.*Content Security Policy/,
];
const OURS = /TrackDiffusion|td_|tracklet|trajectory/i;

const { context, close } = await launch();
const result = { cases: {} };
try {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1600, height: 900 }); // the window the examples are framed for
  const errors = collectErrors(page);
  await openComfyUI(page, base, "TrackDiffusion.CanvasEditors");
  for (const c of cases) result.cases[c.name] = await runCase(page, c);
  result.errors = errors.filter((e) => OURS.test(e) || !FOREIGN.some((re) => re.test(e)));
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));

async function runCase(page, c) {
  const out = {};
  await page.evaluate(async (vue) => {
    const app = window.tdApp(), id = "Comfy.VueNodes.Enabled", store = app.extensionManager?.setting;
    if (typeof store?.set === "function") await store.set(id, vue);
    else await app.ui.settings.setSettingValueAsync(id, vue);
    app.graph.clear();
  }, c.renderer === "vue");
  await page.evaluate(async (w) => { await window.tdApp().loadGraphData(w); }, c.workflow);
  out.load = await settledRects(page, c.renderer);
  out.ds = await page.evaluate(() => ({ scale: window.tdApp().canvas.ds.scale,
    offset: [...window.tdApp().canvas.ds.offset] }));
  const ids = [...Object.keys(c.outputs ?? {}), ...(c.shown ?? [])];
  if (c.run) {
    await page.evaluate(async () => {
      const history = () => window.comfyAPI.api.api.fetchApi("/history").then((r) => r.json());
      const earlier = new Set(Object.keys(await history())); // an earlier case's run is not this one
      window.tdDone = null;
      window.tdPoll = setInterval(async () => {
        const done = Object.entries(await history()).find(([id, e]) => !earlier.has(id)
          && (e.status?.completed || e.status?.status_str === "error"));
        if (done) { window.tdDone = done[1]; clearInterval(window.tdPoll); }
      }, 500);
      await window.tdApp().queuePrompt(0, 1);
    });
    await page.waitForFunction(() => window.tdDone, null, { timeout: 400000, polling: 500 });
    out.history = await page.evaluate(() => ({ status: window.tdDone.status, outputs: window.tdDone.outputs }));
    ids.push(...Object.keys(out.history.outputs).filter((id) => !ids.includes(id)));
  } else {
    await page.evaluate((outputs) => {
      const { api } = window.comfyAPI.api;
      for (const [node, output] of Object.entries(outputs)) {
        api.dispatchCustomEvent("executed", { node, display_node: node, output, prompt_id: "td-layout-test" });
      }
    }, c.outputs);
  }
  out.shown = await shownImages(page, c.renderer, ids);
  out.after = await settledRects(page, c.renderer);
  if (c.screenshot) {
    await page.evaluate(() => { const cv = window.tdApp().canvas; cv.deselectAll?.(); cv.setDirty(true, true); });
    await painted(page);
    await page.screenshot({ path: c.screenshot });
  }
  return out;
}

function painted(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/**
 * Every node's rectangle in graph units, title bar included: the classic canvas draws the title bar above pos, the
 * Vue renderer's node element (header and body) is measured on the page and mapped back through the canvas view.
 */
function rects(renderer) {
  const app = window.tdApp(), LG = window.LiteGraph, ds = app.canvas.ds;
  const origin = app.canvas.canvas.getBoundingClientRect();
  return app.graph.nodes.map((n) => {
    let rect;
    if (renderer === "vue") {
      const r = document.querySelector(`.lg-node[data-node-id="${n.id}"]`)?.getBoundingClientRect();
      const g = (x, y) => [(x - origin.left) / ds.scale - ds.offset[0], (y - origin.top) / ds.scale - ds.offset[1]];
      rect = r ? [...g(r.left, r.top), ...g(r.right, r.bottom)] : null;
    } else {
      rect = [n.pos[0], n.pos[1] - LG.NODE_TITLE_HEIGHT, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
    }
    return { id: String(n.id), type: n.type, rect: rect && rect.map((v) => Math.round(v * 10) / 10) };
  });
}

/** The rectangles once they hold still for three reads in a row (images load, the Vue layout settles). */
async function settledRects(page, renderer) {
  let last = "", same = 0, now;
  for (let i = 0; i < 120 && same < 3; i++) {
    await painted(page);
    await page.waitForTimeout(250);
    await page.evaluate(() => window.tdApp().canvas.setDirty(true, true));
    now = await page.evaluate(rects, renderer);
    const key = JSON.stringify(now);
    same = key === last ? same + 1 : 0;
    last = key;
  }
  return now;
}

/** Wait until each output node shows its result; the natural size of the picture each one shows. */
async function shownImages(page, renderer, ids) {
  const read = (args) => {
    const [vue, nodeIds] = args, app = window.tdApp(), shown = {};
    for (const id of nodeIds) {
      const node = app.graph.getNodeById(id) ?? app.graph.getNodeById(Number(id));
      let img = null;
      if (vue) img = document.querySelector(`.lg-node[data-node-id="${id}"] .image-preview img`);
      else if (node?.widgets?.some((w) => w.name.startsWith("$$"))) img = node.imgs?.[0] ?? null;
      shown[id] = img?.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null;
    }
    return shown;
  };
  const args = [renderer === "vue", ids];
  await page.waitForFunction((a) => {
    const [vue, nodeIds] = a, app = window.tdApp();
    app.canvas.setDirty(true, true); // the classic canvas draws a node's preview when it draws the node
    return nodeIds.every((id) => {
      const node = app.graph.getNodeById(id) ?? app.graph.getNodeById(Number(id));
      const img = vue ? document.querySelector(`.lg-node[data-node-id="${id}"] .image-preview img`)
        : (node?.widgets?.some((w) => w.name.startsWith("$$")) ? node.imgs?.[0] : null);
      return img?.complete && img.naturalWidth > 0;
    });
  }, args, { timeout: 60000, polling: 250 }).catch(() => {});
  return page.evaluate(read, args);
}
