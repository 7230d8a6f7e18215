// Drives the editors on the standalone harness page like a user (real mouse and keyboard events), then prints the
// state the node would receive. Usage: node drive_harness.mjs BASE_URL [SCREENSHOT_DIR]
// The pytest wrapper (test_editor_browser.py) checks that output with the Python parsers.
import { collectErrors, drag, launch } from "./browser.mjs";

const [base, shots] = process.argv.slice(2);
const { context, close } = await launch();
const result = {};
try {
  const page = await context.newPage();
  const errors = collectErrors(page);

  // ------------------------------------------------------------------ Tracklet Editor: 2 objects, 3 keyframes
  await page.goto(`${base}/tests/browser/harness.html?editor=tracklets&exact=1&width=640&height=360&num_frames=9`);
  await page.waitForFunction(() => window.editorReady);
  await page.waitForTimeout(100);
  const at = (x, y) => page.evaluate(([a, b]) => window.editor.imageToClient(a, b), [x, y]);
  const key = (k) => page.keyboard.press(k);
  const t0 = Date.now();

  // Frame 0: draw object 1 and object 2.
  await drag(page, await at(50, 60), await at(150, 160));
  await drag(page, await at(400, 50), await at(480, 130));
  // Object 2: label, hold interpolation.
  await page.fill(".td-label", "car");
  await page.press(".td-label", "Tab");
  await page.selectOption('select[title^="Interpolation"]', "hold");
  // Frame 4: move object 1 right by 200, resize object 2 by its bottom-right corner.
  await page.click(".td-stage canvas", { position: { x: 5, y: 5 } }); // focus the editor, deselect
  for (let i = 0; i < 4; i++) await key("ArrowRight");
  await drag(page, await at(100, 110), await at(300, 110));
  await drag(page, await at(480, 130), await at(520, 150));
  // Frame 6: object 2 disappears.
  await key("ArrowRight");
  await key("ArrowRight");
  await key("h");
  // Frame 8: object 2 by numeric entry (appears again), object 1 moved down.
  await key("ArrowRight");
  await key("ArrowRight");
  await key("h");
  for (const [i, v] of [[2, "600"], [3, "330"], [0, "500"], [1, "200"]]) {
    const input = page.locator(".td-editor input[type=number]").nth(i);
    await input.fill(v);
    await input.press("Tab");
  }
  await drag(page, await at(300, 110), await at(300, 250));
  result.editMs = Date.now() - t0;

  // A third object reaching outside the image: flagged, then undone (Ctrl+Z) and redone and undone again.
  await drag(page, await at(610, 340), await at(660, 380));
  result.warningsWithOutside = await page.evaluate(() => window.editor.root.dataset.warnings);
  result.warningText = await page.textContent(".td-warning");
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_harness.png`, clip: await page.locator("#node").boundingBox() });
  await page.click(".td-stage canvas", { position: { x: 5, y: 5 } });
  await key("Control+z");
  await key("Control+Shift+z");
  await key("Control+z");
  await page.waitForTimeout(50);
  result.warningsAfterUndo = await page.evaluate(() => window.editor.root.dataset.warnings);
  result.tracklets = await page.evaluate(() => window.widget("tracklets_json").value);
  result.objectCountAfterUndo = JSON.parse(result.tracklets).objects.length;
  result.domWidgetSerialize = await page.evaluate(() => window.node.widgets.at(-1).options.serialize);
  result.stateHidden = await page.evaluate(() => window.widget("tracklets_json").hidden);

  // The scrubber seeks.
  await page.fill('.td-editor input[type=range]', "3");
  result.frameAfterScrub = await page.evaluate(() => window.editor.frame);

  // Copy object 1's box at frame 3 (interpolated) and paste it as a keyframe at the last frame.
  await page.mouse.click(...(await at(250, 110)));
  await key("Control+c");
  await key("End");
  await key("Control+v");
  await page.waitForTimeout(50);
  result.afterPaste = await page.evaluate(() => window.widget("tracklets_json").value);

  // Export MOT gt.txt (a download), then import a MOT file through the file picker, then undo the import.
  const [download] = await Promise.all([page.waitForEvent("download"), page.selectOption('select[title="Export"]', "mot")]);
  result.exportedMot = await new Promise((resolve) => {
    download.createReadStream().then((stream) => {
      let text = "";
      stream.on("data", (c) => { text += c; });
      stream.on("end", () => resolve(text));
    });
  });
  await page.setInputFiles('.td-editor input[type=file]', { name: "gt.txt", mimeType: "text/plain",
    buffer: Buffer.from("1,7,10,10,20,20,1,3,1\n2,7,12,10,20,20,1,3,1\n") });
  await page.waitForFunction(() => window.widget("num_frames").value === 2);
  result.afterImport = await page.evaluate(() => window.widget("tracklets_json").value);
  await page.mouse.click(...(await at(600, 20)));
  await key("Control+z");
  result.afterImportUndo = await page.evaluate(() => [window.widget("num_frames").value, window.widget("tracklets_json").value]);

  // ------------------------------------------------------------------ Point Trajectory Editor: mask + arrow
  await page.goto(`${base}/tests/browser/harness.html?editor=trajectories&exact=1&width=320&height=200&num_frames=8`);
  await page.waitForFunction(() => window.editorReady);
  await page.waitForTimeout(100);
  await page.click("text=+ part");
  await page.evaluate(() => { window.editor.brushInput.value = "20"; window.editor.brushInput.dispatchEvent(new Event("input")); });
  const tat = (x, y) => page.evaluate(([a, b]) => {
    const t = window.editor.transform(), r = window.editor.canvas.getBoundingClientRect();
    return [r.left + a * t.scale + t.ox, r.top + b * t.scale + t.oy];
  }, [x, y]);
  await drag(page, await tat(60, 60), await tat(100, 60), 8);
  await page.click("text=arrow");
  await drag(page, await tat(80, 60), await tat(200, 140));
  await page.keyboard.down("Shift");
  await page.mouse.click(...(await tat(260, 60)));
  await page.keyboard.up("Shift");
  await page.waitForTimeout(50);
  result.trajectory = await page.evaluate(() => window.widget("trajectory_json").value);
  // A run's sampled points (ui "td_points"): the status line says at once that they are the exact ones.
  result.trajectoryStatus = await page.evaluate(() => {
    const before = window.editor.statusText.textContent;
    window.editor.onExecuted({ td_points: [{ points: [[80, 60]], component: [0] }] });
    return [before, window.editor.statusText.textContent];
  });
  if (shots) await page.screenshot({ path: `${shots}/trajectory_editor_harness.png`, clip: await page.locator("#node").boundingBox() });
  result.errors = errors;
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));
