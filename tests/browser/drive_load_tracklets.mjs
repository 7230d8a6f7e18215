// Drives Load Tracklets' upload button in the real ComfyUI frontend (tests/browser/test_load_tracklets_upload.py
// starts the server): adds Load Tracklets -> Visualize Tracklets -> Preview Image, reads what the workflow would save,
// clicks the button on the classic canvas, answers the file chooser with FILE, waits for the `file` widget to name the
// upload, picks SECOND (same file name, other bytes: the server renames it) the same way, then queues the prompt and
// waits for the queue to drain.
// Usage: node drive_load_tracklets.mjs BASE_URL FILE SECOND
// Prints JSON: the widgets before and after, the saved widgets_values and the API prompt's inputs, and errors.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { collectErrors, launch, openComfyUI } from "./browser.mjs";

const [base, filePath, secondPath] = process.argv.slice(2);
if (!secondPath) throw new Error("usage: drive_load_tracklets.mjs BASE_URL FILE SECOND");
const fileName = basename(filePath);

// Console errors of the frontend itself that say nothing about the pack (as in drive_comfyui.mjs).
const FOREIGN = [
  /^console: Failed to load resource/,
  /^console: \[Jobs API\] Error fetching jobs: JobsApiError: Failed to fetch jobs: 400\b/,
  /^console: (Connecting to|Fetch API cannot load) '?https:\/\/huggingface\.co\/\S+.*Content Security Policy/,
];
const OURS = /TrackDiffusion|Load Tracklets|tracklet/i;

const { context, close } = await launch();
const result = {};
try {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await openComfyUI(page, base, "trackdiffusion.LoadTrackletsUpload");
  await page.evaluate(async () => {
    const app = window.tdApp(), id = "Comfy.VueNodes.Enabled", store = app.extensionManager?.setting;
    if (typeof store?.set === "function") await store.set(id, false); // the classic canvas: the button is drawn there
    else if (app.ui.settings.getSettingValue(id) !== undefined) await app.ui.settings.setSettingValueAsync(id, false);
    app.graph.clear();
    Object.assign(app.canvas.ds, { scale: 1, offset: [0, 0] });
  });
  await page.waitForFunction(() => window.tdApp().graph.nodes.length === 0);
  result.pickersBefore = await page.evaluate(() => document.querySelectorAll('input[type="file"]').length);

  result.added = await page.evaluate(() => {
    const app = window.tdApp(), LG = window.LiteGraph;
    const node = LG.createNode("LoadTracklets");
    node.pos = [90, 170];
    app.graph.add(node);
    const vis = LG.createNode("VisualizeTracklets");
    vis.pos = [520, 170];
    app.graph.add(vis);
    const preview = LG.createNode("PreviewImage");
    preview.pos = [860, 170];
    app.graph.add(preview);
    node.connect(0, vis, 0);
    vis.connect(0, preview, 0);
    app.canvas.setDirty(true, true);
    window.tdNode = node;
    const button = node.widgets.find((w) => w.name === "upload tracklets file");
    return { widgetNames: node.widgets.map((w) => w.name),
      button: button ? { type: button.type, serialize: button.serialize, optionSerialize: button.options?.serialize }
        : null };
  });
  result.pickersAfterAdd = await page.evaluate(() => document.querySelectorAll('input[type="file"]').length);
  result.before = await savedAndSent(page);

  result.first = await upload(page, filePath, `tracklets/${fileName}`);
  result.second = await upload(page, secondPath, `tracklets/${fileName.replace(/(\.[^.]*)$/, " (1)$1")}`);
  result.after = await savedAndSent(page);

  // Run it: Preview Image is the output; wait until the queue is empty and the history holds the prompt.
  result.queued = await page.evaluate(() => window.tdApp().queuePrompt(0, 1).then(() => true, (e) => String(e)));
  result.ran = await page.waitForFunction(async () => {
    const { api } = window.comfyAPI?.api ?? {};
    const fetchApi = (p) => (api ? api.fetchApi(p) : fetch(`/api${p}`)).then((r) => r.json());
    const queue = await fetchApi("/queue");
    if (queue.queue_running.length || queue.queue_pending.length) return false;
    return Object.keys(await fetchApi("/history")).length > 0;
  }, null, { timeout: 60000, polling: 250 }).then(() => true, () => false);

  // Removing the node removes its hidden picker.
  result.pickersAfterRemove = await page.evaluate(() => {
    window.tdApp().graph.remove(window.tdNode);
    return document.querySelectorAll('input[type="file"]').length;
  });
  result.errors = errors.filter((e) => OURS.test(e) || !FOREIGN.some((re) => re.test(e)));
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));

function painted(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/**
 * Wait until the button stops moving (the frontend may still be laying out the node or resizing the canvas): the
 * node's box, the button's offset and the canvas's place and transform hold still for three reads in a row.
 */
async function settle(page) {
  let last = "", same = 0;
  for (let i = 0; i < 80 && same < 2; i++) {
    await painted(page);
    const now = await page.evaluate(() => {
      const app = window.tdApp(), node = window.tdNode, ds = app.canvas.ds;
      const w = node.widgets.find((x) => x.name === "upload tracklets file");
      return JSON.stringify([[...node.pos], [...node.size], w.y ?? w.last_y, [...ds.offset], ds.scale,
        app.canvas.canvas.getBoundingClientRect()]);
    });
    same = now === last ? same + 1 : 0;
    last = now;
    await page.waitForTimeout(100);
  }
  return last;
}

/** What the saved workflow holds for the node, and what the API prompt sends. */
function savedAndSent(page) {
  return page.evaluate(async () => {
    const app = window.tdApp(), id = String(window.tdNode.id);
    const workflow = app.graph.serialize();
    const { output } = await app.graphToPrompt();
    return { widgets_values: workflow.nodes.find((n) => String(n.id) === id)?.widgets_values ?? null,
      nodeSerialize: window.tdNode.serialize().widgets_values, api: output[id]?.inputs ?? null };
  });
}

/** Click the upload button on the canvas, answer the file chooser with `path`, wait for `file` to read `expected`. */
async function upload(page, path, expected) {
  let chooser, clicks = 0, at, layout;
  // LiteGraph takes a press that lasts over 150 ms (a loaded machine) for a drag, not a click, and a busy frontend may
  // still move the node between the read and the click: wait for the layout again and click again then.
  while (!chooser && clicks < 6) {
    clicks += 1;
    await page.evaluate(() => window.tdApp().canvas.setDirty(true, true));
    layout = await settle(page);
    at = await page.evaluate(() => {
      const app = window.tdApp(), node = window.tdNode, ds = app.canvas.ds, LG = window.LiteGraph;
      const w = node.widgets.find((x) => x.name === "upload tracklets file");
      const r = app.canvas.canvas.getBoundingClientRect();
      const x = node.pos[0] + node.size[0] / 2, y = node.pos[1] + (w.y ?? w.last_y) + (LG.NODE_WIDGET_HEIGHT ?? 20) / 2;
      return [r.left + (x + ds.offset[0]) * ds.scale, r.top + (y + ds.offset[1]) * ds.scale];
    });
    [chooser] = await Promise.all([page.waitForEvent("filechooser", { timeout: 6000 }).catch(() => null),
      page.mouse.click(at[0], at[1])]);
  }
  if (!chooser) {
    const hit = await page.evaluate(([x, y]) => document.elementFromPoint(x, y)?.outerHTML.slice(0, 200), at);
    throw new Error(`${expected}: no file chooser after ${clicks} clicks at ${at} (on ${hit}; layout ${layout})`);
  }
  const accept = await chooser.element().getAttribute("accept");
  await chooser.setFiles({ name: fileName, mimeType: "application/json", buffer: readFileSync(path) });
  const done = await page.waitForFunction((v) => window.tdNode.widgets.find((w) => w.name === "file").value === v,
    expected, { timeout: 15000 }).then(() => true, () => false);
  return page.evaluate(([ok, acc, n]) => {
    const w = window.tdNode.widgets.find((x) => x.name === "file");
    return { done: ok, accept: acc, clicks: n, value: w.value, listed: [...(w.options?.values ?? [])] };
  }, [done, accept, clicks]);
}
