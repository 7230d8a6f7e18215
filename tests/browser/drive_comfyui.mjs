// Drives the real ComfyUI frontend (tests/integration/test_frontend_editor.py starts the server): adds a LoadImage
// and a Tracklet Editor, wires the image in, draws a box with the mouse, queues the prompt and waits for the node
// to run. Editor "trajectory" does the same with a Point Trajectory Editor (brush a mask, drag an arrow).
// Usage: node drive_comfyui.mjs BASE_URL IMAGE_NAME SCREENSHOT_DIR tracklets|trajectory classic|vue NUM_FRAMES [FIRST]
// With FIRST (an image in the server's input folder), the LoadImage starts on it and the user then picks IMAGE_NAME
// in the LoadImage's own widget: the editor's background must follow.
// Prints JSON: the frontend version and renderer it ran in, the state the editor wrote, the saved workflow's
// widgets_values, the API prompt, and checks.
//
// Works with every frontend the tests serve (tests/support/frontends.py): the app is reached as
// window.comfyAPI.app.app or window.app, settings through the extension manager or the legacy settings UI, and node
// ids are compared as strings (newer frontends keep them as strings in the live graph, numbers in the saved one).
import { collectErrors, drag, launch, openComfyUI } from "./browser.mjs";

const [base, imageName, shots, editorKind, renderer, framesArg, firstImage] = process.argv.slice(2);
const numFrames = Number(framesArg ?? 5);
if (!["tracklets", "trajectory"].includes(editorKind) || !["classic", "vue"].includes(renderer)) {
  throw new Error("usage: drive_comfyui.mjs BASE_URL IMAGE_NAME SCREENSHOT_DIR tracklets|trajectory classic|vue N [FIRST]");
}
const vue = renderer === "vue";

// Console errors of the frontend itself that say nothing about the editors. A message naming the pack never counts
// as one of these.
const FOREIGN = [
  /^console: Failed to load resource/, // user.css, userdata listings, templates: absent on a fresh server
  // Frontends newer than the ComfyUI server (v0.8.0) ask its /api/jobs for a status it does not know ("cancelled").
  /^console: \[Jobs API\] Error fetching jobs: JobsApiError: Failed to fetch jobs: 400\b/,
  // The default workflow's missing-model check probes huggingface.co; the page's CSP (connect-src 'self') refuses.
  /^console: (Connecting to|Fetch API cannot load) '?https:\/\/huggingface\.co\/\S+.*Content Security Policy/,
];
const OURS = /TrackDiffusion|td_|trackdiffusion_editor|tracklet|trajectory/i;

const { context, close } = await launch();
const result = { editor: editorKind, renderer };
try {
  const page = await context.newPage();
  const errors = collectErrors(page);
  // Start from an empty graph: openComfyUI waits for the default workflow to arrive, then it is cleared.
  await openComfyUI(page, base, "TrackDiffusion.CanvasEditors");
  result.frontendVersion = await page.evaluate(() => window.__COMFYUI_FRONTEND_VERSION__ ?? null);
  result.vueNodes = await page.evaluate(async (useVue) => {
    const app = window.tdApp(), id = "Comfy.VueNodes.Enabled";
    const store = app.extensionManager?.setting;
    if (typeof store?.set === "function") await store.set(id, useVue);
    else await app.ui.settings.setSettingValueAsync(id, useVue);
    app.graph.clear();
    const ds = app.canvas.ds;
    ds.scale = 1;
    ds.offset = [0, 0];
    return typeof store?.get === "function" ? store.get(id) : app.ui.settings.getSettingValue(id);
  }, vue);
  await page.waitForFunction(() => window.tdApp().graph.nodes.length === 0);
  if (editorKind === "trajectory") await trajectory(page);
  else await tracklets(page);
  result.errors = errors.filter((e) => OURS.test(e) || !FOREIGN.some((re) => re.test(e)));
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));

/** Wait for a condition in the page; on timeout carry on (the Python side asserts on what was read). */
function waitFor(page, fn, arg, timeout = 20000) {
  return page.waitForFunction(fn, arg, { timeout }).then(() => true, () => false);
}

/** Two animation frames: whatever the editor queued (requestRender) has been drawn. */
function painted(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

async function addEditor(page, type, params) {
  return page.evaluate(([image, editorType, widgets]) => {
    const app = window.tdApp(), LG = window.LiteGraph;
    // Clear of the app's floating bars (breadcrumb and menu at the top left, run button at the top right).
    const load = LG.createNode("LoadImage");
    load.pos = [90, 170];
    app.graph.add(load);
    const w = load.widgets.find((x) => x.name === "image");
    w.value = image;
    w.callback?.(image);
    const editor = LG.createNode(editorType);
    editor.pos = [440, 160];
    app.graph.add(editor);
    for (const [name, value] of Object.entries(widgets)) {
      const x = editor.widgets.find((v) => v.name === name);
      x.value = value;
      x.callback?.(value);
    }
    load.connect(0, editor, editor.inputs.findIndex((i) => i.name === "background"));
    app.canvas.setDirty(true, true);
    window.tdNode = editor;
    window.tdLoad = load;
    return { load: String(load.id), editor: String(editor.id) };
  }, [firstImage || imageName, type, params]);
}

/** The file name the editor's (first) background was loaded from, once it has loaded. */
function backgroundName() {
  const img = window.tdNode.tdEditor.background[0];
  return img?.complete && img.naturalWidth ? new URL(img.src, location.href).searchParams.get("filename") : null;
}

/** Pick another file in the LoadImage's image widget, as a user does, in either renderer. */
async function pickImage(page, name) {
  const { loadId, current, at } = await page.evaluate(() => {
    const app = window.tdApp(), load = window.tdLoad, ds = app.canvas.ds;
    const w = load.widgets.find((x) => x.name === "image"), r = app.canvas.canvas.getBoundingClientRect();
    const x = load.pos[0] + load.size[0] / 2, y = load.pos[1] + (w.y ?? 0) + 10; // the classic combo's middle
    return { loadId: String(load.id), current: String(w.value),
      at: [r.left + (x + ds.offset[0]) * ds.scale, r.top + (y + ds.offset[1]) * ds.scale] };
  });
  if (vue) await page.locator(`.lg-node[data-node-id="${loadId}"]`).getByText(current.slice(0, 8)).first().click();
  else await page.mouse.click(at[0], at[1]); // LiteGraph opens the combo's menu
  await page.getByText(name, { exact: true }).last().click();
}

/**
 * Wait until the editor is on screen, then record which renderer shows it: inside the node's Vue component
 * ("vue-node": an element carrying the node's data-node-id) or in the classic canvas's DOM widget layer.
 */
async function shown(page) {
  await waitFor(page, () => {
    const c = window.tdNode.tdEditor.canvas;
    return c.isConnected && c.getBoundingClientRect().width > 100 && c.checkVisibility?.() !== false;
  });
  await settle(page);
  result.host = await page.evaluate(() => {
    const root = window.tdNode.tdEditor.root;
    const vueNode = root.closest("[data-node-id]");
    if (vueNode) return vueNode.dataset.nodeId === String(window.tdNode.id) ? "vue-node" : "another node";
    return root.closest(".dom-widget") ? "dom-widget" : "elsewhere";
  });
  // The editor's whole root is inside the page and not covered by anything (its centre and corners hit it).
  result.editorUncovered = await page.evaluate(() => {
    const root = window.tdNode.tdEditor.root, r = root.getBoundingClientRect();
    const inside = r.left >= 0 && r.top >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
    const probes = [[0.5, 0.5], [0.03, 0.03], [0.97, 0.03], [0.03, 0.97], [0.97, 0.97]];
    return inside && probes.every(([fx, fy]) => {
      const el = document.elementFromPoint(r.left + fx * r.width, r.top + fy * r.height);
      return el !== null && root.contains(el);
    });
  });
}

/**
 * Where the editor's bottom edge and its status line are against the node's bottom border, in client pixels: the
 * Vue node's element, or the classic node's rectangle on the canvas.
 */
function againstNode(page) {
  return page.evaluate(() => {
    const app = window.tdApp(), node = window.tdNode, ed = node.tdEditor, ds = app.canvas.ds;
    const el = document.querySelector(`.lg-node[data-node-id="${node.id}"]`);
    const canvasTop = app.canvas.canvas.getBoundingClientRect().top;
    const nodeBottom = el ? el.getBoundingClientRect().bottom : canvasTop + (node.pos[1] + node.size[1] + ds.offset[1]) * ds.scale;
    return { nodeBottom, rootBottom: ed.root.getBoundingClientRect().bottom,
      statusBottom: ed.statusText.getBoundingClientRect().bottom, stageHeight: ed.canvas.getBoundingClientRect().height };
  });
}

/** The editor in its node: at the size it was given, and (classic) with the node shrunk to its minimum size. */
async function fitsInNode(page) {
  result.inNode = await againstNode(page);
  if (vue) return;
  const size = await page.evaluate(() => {
    const node = window.tdNode, size = [...node.size];
    node.setSize(node.computeSize());
    window.tdApp().canvas.setDirty(true, true);
    return size;
  });
  await settle(page);
  result.inNodeAtMinimum = await againstNode(page);
  await page.evaluate((s) => { window.tdNode.setSize(s); window.tdApp().canvas.setDirty(true, true); }, size);
  await settle(page);
}

/**
 * The wheel over the editor does to the graph what it does over the empty canvas (zoom, or pan in the standard
 * navigation mode): the view after one notch over the editor's canvas and after one over empty canvas, from the
 * same start (restored afterwards).
 */
async function wheelOverEditor(page) {
  const view = () => page.evaluate(() => {
    const ds = window.tdApp().canvas.ds;
    return { scale: ds.scale, offset: [...ds.offset] };
  });
  const restore = (v) => page.evaluate((x) => {
    const c = window.tdApp().canvas;
    c.ds.scale = x.scale;
    c.ds.offset = [...x.offset];
    c.setDirty(true, true);
  }, v);
  const notch = async (at) => {
    await page.mouse.move(at[0], at[1]);
    await page.mouse.wheel(0, -120);
    await page.waitForTimeout(150);
    await painted(page);
    return view();
  };
  const before = await view();
  const editorAt = await page.evaluate(() => {
    const r = window.tdNode.tdEditor.canvas.getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2];
  });
  const emptyAt = await page.evaluate(() => {
    const canvas = window.tdApp().canvas.canvas;
    return [[1250, 500], [1250, 800], [1150, 300], [700, 950], [200, 800]]
      .find(([x, y]) => document.elementFromPoint(x, y) === canvas) ?? null;
  });
  const overEditor = await notch(editorAt);
  await restore(before);
  const overCanvas = emptyAt ? await notch(emptyAt) : null;
  await restore(before);
  await settle(page);
  return { before, overEditor, overCanvas };
}

async function queueAndWait(page, until) {
  await page.evaluate(() => window.tdApp().queuePrompt(0, 1));
  await waitFor(page, until, null, 120000);
}

/**
 * Wait until the editor's canvas stops moving (the frontend may still be laying out or scaling the graph): its
 * position and image transform must hold still for three reads in a row, since on a loaded machine the first two
 * reads may agree while the node is still being laid out.
 */
async function settle(page) {
  let last = "", same = 0;
  for (let i = 0; i < 80 && same < 2; i++) {
    const now = await page.evaluate(() => {
      const ed = window.tdNode.tdEditor;
      return JSON.stringify([ed.canvas.getBoundingClientRect(), ed.transform ? ed.transform() : null]);
    });
    same = now === last ? same + 1 : 0;
    last = now;
    await page.waitForTimeout(150);
  }
}

/**
 * The screenshot's clip: all nodes (title bars included), wherever the renderer put them. The nodes are deselected
 * first, so no selection toolbar or badge of the frontend's reaches over the clip's edge.
 */
async function nodesClip(page) {
  await page.evaluate(() => {
    const c = window.tdApp().canvas;
    if (typeof c.deselectAll === "function") c.deselectAll();
    else c.deselectAllNodes?.();
    c.setDirty(true, true);
  });
  await painted(page);
  const [x1, y1, x2, y2] = await page.evaluate(() => {
    const app = window.tdApp(), LG = window.LiteGraph, ds = app.canvas.ds;
    const canvasRect = app.canvas.canvas.getBoundingClientRect();
    const rects = app.graph.nodes.map((n) => {
      const el = document.querySelector(`.lg-node[data-node-id="${n.id}"]`); // a Vue node
      const r = el?.getBoundingClientRect();
      if (r?.width) return [r.left, r.top, r.right, r.bottom];
      const title = LG.NODE_TITLE_HEIGHT ?? 30;
      const at = (x, y) => [canvasRect.left + (x + ds.offset[0]) * ds.scale, canvasRect.top + (y + ds.offset[1]) * ds.scale];
      return [...at(n.pos[0], n.pos[1] - title), ...at(n.pos[0] + n.size[0], n.pos[1] + n.size[1])];
    });
    return [0, 1, 2, 3].map((i) => (i < 2 ? Math.min : Math.max)(...rects.map((r) => r[i])));
  });
  const m = 16, left = Math.max(0, x1 - m), top = Math.max(0, y1 - 2 * m); // classic: the pack's badge above
  return { x: left, y: top, width: Math.min(1400, x2 + m) - left, height: Math.min(1000, y2 + m) - top };
}

async function savedAndSent(page) {
  return page.evaluate(async () => {
    const app = window.tdApp(), id = String(window.tdNode.id);
    const workflow = app.graph.serialize();
    const { output } = await app.graphToPrompt();
    return { widgets_values: workflow.nodes.find((n) => String(n.id) === id)?.widgets_values ?? null,
      api: output[id] ?? null };
  });
}

async function trajectory(page) {
  result.nodeIds = await addEditor(page, "PointTrajectoryEditor", { width: 640, height: 360, num_frames: numFrames });
  await waitFor(page, () => window.tdNode.tdEditor.background[0]?.naturalWidth > 0);
  await shown(page);
  const at = (x, y) => page.evaluate(([a, b]) => {
    const ed = window.tdNode.tdEditor, t = ed.transform(), r = ed.canvas.getBoundingClientRect();
    const s = r.width / ed.canvas.offsetWidth; // the classic canvas scales DOM widgets by the zoom
    return [r.left + (a * t.scale + t.ox) * s, r.top + (b * t.scale + t.oy) * s];
  }, [x, y]);
  await fitsInNode(page);
  const editor = page.locator('[data-td-editor="trajectories"]');
  await editor.locator("button", { hasText: "+ part" }).click();
  await settle(page);
  await drag(page, await at(170, 170), await at(230, 190), 10); // brush over the white disc
  await editor.locator("button", { hasText: /^arrow$/ }).click();
  await settle(page);
  await drag(page, await at(200, 180), await at(480, 120));
  result.nodeCount = await page.evaluate(() => window.tdApp().graph.nodes.length);
  Object.assign(result, await savedAndSent(page));
  // The node sends its sampled points back; the canvas shows them (not the JS preview) until the next edit.
  await queueAndWait(page, () => window.tdNode.tdEditor.statusText.textContent.includes("exact (last run)"));
  result.status = await page.evaluate(() => window.tdNode.tdEditor.statusText.textContent);
  await page.evaluate(() => window.tdNode.tdEditor.setFrame(window.tdNode.tdEditor.params().numFrames - 1));
  await painted(page);
  if (shots) await page.screenshot({ path: `${shots}/trajectory_editor_${renderer}.png`, clip: await nodesClip(page) });
  result.wheel = await wheelOverEditor(page);
}

async function tracklets(page) {
  result.nodeIds = await addEditor(page, "TrackletEditor", { width: 640, height: 360, num_frames: numFrames });

  // The editor shows the LoadImage picture before any run (/view?...&type=input), and follows the user's pick.
  await waitFor(page, () => window.tdNode.tdEditor.backgroundFor(0) !== null);
  await shown(page);
  if (firstImage) {
    result.firstBackground = await page.evaluate(backgroundName);
    await pickImage(page, imageName);
    await waitFor(page, `(${backgroundName})() === ${JSON.stringify(imageName)}`, null, 10000);
    result.picked = { value: await page.evaluate(() => window.tdLoad.widgets.find((x) => x.name === "image").value),
      background: await page.evaluate(backgroundName) };
    await settle(page);
  }
  result.stateHidden = await page.evaluate(() => {
    const w = window.tdNode.widgets.find((x) => x.name === "tracklets_json");
    return !!(w.hidden || w.options?.hidden);
  });
  await fitsInNode(page);

  // Draw one box with the mouse, then a keyframe at the last frame moved by 100 px.
  const at = (x, y) => page.evaluate(([a, b]) => window.tdNode.tdEditor.imageToClient(a, b), [x, y]);
  result.nodeCountBeforeKeys = await page.evaluate(() => window.tdApp().graph.nodes.length);
  await drag(page, await at(100, 80), await at(260, 200));
  await page.keyboard.press("Delete"); // the editor's (deletes the keyframe), never the graph's (deletes the node)
  await page.keyboard.press("Control+z"); // ours (undo), not ComfyUI's graph undo
  result.stateAfterUndo = await page.evaluate(() => window.tdNode.widgets.find((x) => x.name === "tracklets_json").value);
  await page.keyboard.press("End"); // ours: the last frame
  await drag(page, await at(180, 140), await at(280, 140));
  const steps = Math.floor((numFrames - 1) / 2);
  for (let i = 0; i < steps; i++) await page.keyboard.press("ArrowLeft");
  await waitFor(page, (f) => window.tdNode.tdEditor.frame === f, numFrames - 1 - steps, 5000);
  await painted(page);
  result.nodeCountAfterKeys = await page.evaluate(() => window.tdApp().graph.nodes.length);
  result.state = await page.evaluate(() => window.tdNode.widgets.find((x) => x.name === "tracklets_json").value);
  const clip = await nodesClip(page);
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_${renderer}.png`, clip });

  // What gets saved and what gets sent.
  Object.assign(result, await savedAndSent(page));

  // Run it; the node sends the background frames back, which the canvas shows for every frame.
  await queueAndWait(page, () => window.tdNode.properties?.td_background?.length === window.tdNode.tdEditor.doc.num_frames);
  result.backgroundAfterRun = await page.evaluate(() => window.tdNode.properties.td_background);
  const loaded = () => window.tdNode.tdEditor.background.filter((i) => i.complete && i.naturalWidth).length;
  await waitFor(page, `(${loaded})() === ${numFrames}`);
  result.framesLoaded = await page.evaluate(loaded);
  await painted(page);
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_${renderer}_after_run.png`, clip });
  result.wheel = await wheelOverEditor(page);

  // Save and reload the workflow: the new node instance's editor must show the same document. The extension
  // follows the upstream image in a task queued while the workflow loads; wait until that has run (tdLoading).
  result.reloaded = await page.evaluate(async () => {
    const app = window.tdApp(), old = window.tdNode, id = old.id;
    await app.loadGraphData(JSON.parse(JSON.stringify(app.graph.serialize())));
    const deadline = performance.now() + 15000;
    let node = app.graph.getNodeById(id);
    while (performance.now() < deadline && !(node && node !== old && node.tdEditor && node.tdLoading === false)) {
      await new Promise((r) => setTimeout(r, 50));
      node = app.graph.getNodeById(id);
    }
    await new Promise((r) => setTimeout(r, 0)); // any other upstream check queued with it
    return { fresh: node !== old, objects: node.tdEditor.doc.objects.length,
      state: node.widgets.find((w) => w.name === "tracklets_json").value,
      backgroundFrames: node.tdEditor.background.length };
  });
}
