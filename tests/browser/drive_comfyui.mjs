// Drives the real ComfyUI frontend (tests/integration/test_frontend_editor.py starts the server): adds a LoadImage
// and a Tracklet Editor, wires the image in, draws a box with the mouse, queues the prompt and waits for the node
// to run. Mode "trajectory" does the same with a Point Trajectory Editor (brush a mask, drag an arrow).
// Usage: node drive_comfyui.mjs BASE_URL IMAGE_NAME SCREENSHOT_DIR classic|vue|trajectory NUM_FRAMES
// Prints JSON: the state the editor wrote, the saved workflow's widgets_values, the API prompt, and checks.
import { collectErrors, drag, launch } from "./browser.mjs";

const [base, imageName, shots, mode, framesArg] = process.argv.slice(2);
const numFrames = Number(framesArg ?? 5);
const vue = mode === "vue";
const { context, close } = await launch();
const result = { mode };
try {
  const page = await context.newPage();
  const errors = collectErrors(page);
  await page.goto(base);
  await page.waitForFunction(() => window.comfyAPI?.app?.app?.graph && window.LiteGraph, null, { timeout: 90000 });
  await page.waitForFunction(() => window.comfyAPI.app.app.extensions.some((e) => e.name === "TrackDiffusion.CanvasEditors"));
  // Start from an empty graph: wait for the default workflow to arrive, then clear it.
  await page.waitForFunction(() => window.comfyAPI.app.app.graph.nodes.length > 0, null, { timeout: 15000 })
    .catch(() => {});
  await page.evaluate(async (useVue) => {
    const app = window.comfyAPI.app.app;
    await app.extensionManager.setting.set("Comfy.VueNodes.Enabled", useVue);
    app.graph.clear();
    const ds = app.canvas.ds;
    ds.scale = 1;
    ds.offset = [0, 0];
  }, vue);
  await page.waitForTimeout(500);
  if (mode === "trajectory") await trajectory(page);
  else await tracklets(page);
  result.errors = errors.filter((e) => !/Failed to load resource/.test(e) || /TrackDiffusion|td_|trackdiffusion_editor/.test(e));
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));

async function addEditor(page, type, params) {
  return page.evaluate(([image, editorType, widgets]) => {
    const app = window.comfyAPI.app.app, LG = window.LiteGraph;
    const load = LG.createNode("LoadImage");
    load.pos = [80, 80];
    app.graph.add(load);
    const w = load.widgets.find((x) => x.name === "image");
    w.value = image;
    w.callback?.(image);
    const editor = LG.createNode(editorType);
    editor.pos = [420, 60];
    app.graph.add(editor);
    for (const [name, value] of Object.entries(widgets)) {
      const x = editor.widgets.find((v) => v.name === name);
      x.value = value;
      x.callback?.(value);
    }
    load.connect(0, editor, editor.inputs.findIndex((i) => i.name === "background"));
    app.canvas.setDirty(true, true);
    window.tdNode = editor;
    return { load: load.id, editor: editor.id };
  }, [imageName, type, params]);
}

async function queueAndWait(page, until) {
  await page.evaluate(() => window.comfyAPI.app.app.queuePrompt(0, 1));
  await page.waitForFunction(until, null, { timeout: 120000 });
  await page.waitForTimeout(800);
}

/** Wait until the editor's canvas stops moving (the frontend may still be laying out or scaling the graph). */
// Wait until the canvas position and the image transform hold still for three reads in a row: on a loaded
// machine the frontend may still be laying the node out when the first two reads happen to agree.
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

async function savedAndSent(page) {
  return page.evaluate(async () => {
    const app = window.comfyAPI.app.app;
    const workflow = app.graph.serialize();
    const { output } = await app.graphToPrompt();
    return { widgets_values: workflow.nodes.find((n) => n.id === window.tdNode.id).widgets_values,
      api: output[String(window.tdNode.id)] };
  });
}

async function trajectory(page) {
  result.nodeIds = await addEditor(page, "PointTrajectoryEditor", { width: 640, height: 360, num_frames: numFrames });
  await page.waitForFunction(() => window.tdNode.tdEditor.background[0]?.naturalWidth > 0, null, { timeout: 20000 });
  const at = (x, y) => page.evaluate(([a, b]) => {
    const ed = window.tdNode.tdEditor, t = ed.transform(), r = ed.canvas.getBoundingClientRect();
    const s = r.width / ed.canvas.offsetWidth; // the classic canvas scales DOM widgets by the zoom
    return [r.left + (a * t.scale + t.ox) * s, r.top + (b * t.scale + t.oy) * s];
  }, [x, y]);
  const editor = page.locator('[data-td-editor="trajectories"]');
  await editor.locator("button", { hasText: "+ part" }).click();
  await settle(page);
  await drag(page, await at(170, 170), await at(230, 190), 10); // brush over the white disc
  await editor.locator("button", { hasText: /^arrow$/ }).click();
  await settle(page);
  await drag(page, await at(200, 180), await at(480, 120));
  Object.assign(result, await savedAndSent(page));
  await queueAndWait(page, () => window.tdNode.tdEditor.statusText.textContent.includes("exact"));
  result.status = await page.evaluate(() => window.tdNode.tdEditor.statusText.textContent);
  await page.evaluate(() => window.tdNode.tdEditor.setFrame(window.tdNode.tdEditor.params().numFrames - 1));
  await page.waitForTimeout(300);
  if (shots) await page.screenshot({ path: `${shots}/trajectory_editor_classic.png`, clip: { x: 60, y: 30, width: 1000, height: 690 } });
}

async function tracklets(page) {
  result.nodeIds = await addEditor(page, "TrackletEditor", { width: 640, height: 360, num_frames: numFrames });

  // The editor shows the LoadImage picture before any run (/view?...&type=input).
  await page.waitForFunction(() => window.tdNode.tdEditor.backgroundFor(0) !== null, null, { timeout: 20000 });
  await page.waitForFunction(() => {
    const c = window.tdNode.tdEditor.canvas;
    return c.isConnected && c.getBoundingClientRect().width > 100 && c.checkVisibility?.() !== false;
  }, null, { timeout: 20000 });
  await page.waitForTimeout(500);
  result.stateHidden = await page.evaluate(() => {
    const w = window.tdNode.widgets.find((x) => x.name === "tracklets_json");
    return !!(w.hidden || w.options?.hidden);
  });

  // Draw one box with the mouse, then a keyframe at the last frame moved by 100 px.
  await settle(page);
  const at = (x, y) => page.evaluate(([a, b]) => window.tdNode.tdEditor.imageToClient(a, b), [x, y]);
  result.nodeCountBeforeKeys = await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length);
  await drag(page, await at(100, 80), await at(260, 200));
  await page.keyboard.press("Delete"); // the editor's (deletes the keyframe), never the graph's (deletes the node)
  await page.keyboard.press("Control+z"); // ours (undo), not ComfyUI's graph undo
  result.stateAfterUndo = await page.evaluate(() => window.tdNode.widgets.find((x) => x.name === "tracklets_json").value);
  await page.keyboard.press("End"); // ours: the last frame
  await drag(page, await at(180, 140), await at(280, 140));
  for (let i = 0; i < Math.floor((numFrames - 1) / 2); i++) await page.keyboard.press("ArrowLeft");
  await page.waitForTimeout(300);
  result.nodeCountAfterKeys = await page.evaluate(() => window.comfyAPI.app.app.graph.nodes.length);
  result.state = await page.evaluate(() => window.tdNode.widgets.find((x) => x.name === "tracklets_json").value);
  const clip = { x: 60, y: 30, width: 1000, height: 690 }; // the two nodes, without the app's side bars
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_${result.mode}.png`, clip });

  // What gets saved and what gets sent.
  Object.assign(result, await savedAndSent(page));

  // Run it; the node sends the background frames back, which the canvas shows for every frame.
  await queueAndWait(page, () => window.tdNode.properties?.td_background?.length === window.tdNode.tdEditor.doc.num_frames);
  result.backgroundAfterRun = await page.evaluate(() => window.tdNode.properties.td_background);
  result.framesLoaded = await page.evaluate(() => window.tdNode.tdEditor.background.filter((i) => i.complete && i.naturalWidth).length);
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_${result.mode}_after_run.png`, clip });

  // Save and reload the workflow: the new node instance's editor must show the same document.
  result.reloaded = await page.evaluate(async () => {
    const app = window.comfyAPI.app.app;
    const id = window.tdNode.id;
    await app.loadGraphData(JSON.parse(JSON.stringify(app.graph.serialize())));
    await new Promise((r) => setTimeout(r, 300));
    const node = app.graph.getNodeById(id);
    return { fresh: node !== window.tdNode, objects: node.tdEditor.doc.objects.length,
      state: node.widgets.find((w) => w.name === "tracklets_json").value,
      backgroundFrames: node.tdEditor.background.length };
  });
}
