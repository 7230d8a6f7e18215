// Drives the editors on the standalone harness page like a user (real mouse and keyboard events), then prints the
// state the node would receive. Usage: node drive_harness.mjs BASE_URL [SCREENSHOT_DIR]
// The pytest wrapper (test_editor_browser.py) checks that output with the Python parsers.
import { collectErrors, drag, launch } from "./browser.mjs";

/** Two animation frames: whatever the editor queued (requestRender) has been drawn. */
function painted(page) {
  return page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** The text the editor's <select> shows (its selected option), or null when it shows nothing. */
function shownOption(page, title) {
  return page.evaluate((t) => {
    const s = [...document.querySelectorAll(".td-editor select")].find((x) => x.title.startsWith(t));
    return s.selectedOptions[0]?.textContent ?? null;
  }, title);
}

/**
 * Wheel over the editor's stage, once bubbling freely (the harness gives no wheel target: the event must leave the
 * editor, as it does over any element that does not use it) and once with a wheel target (the extension gives the
 * graph's canvas): the event goes there, once, and nowhere else. Returns what a listener on the document saw.
 */
async function wheelOverStage(page) {
  const box = await page.locator(".td-stage").boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.evaluate(() => {
    window.wheelSeen = [];
    window.wheelTarget = document.createElement("div");
    document.body.append(window.wheelTarget);
    document.addEventListener("wheel", (e) => window.wheelSeen.push({
      at: e.target === window.wheelTarget ? "target" : window.editor.root.contains(e.target) ? "editor" : "other",
      deltaY: e.deltaY }));
  });
  await page.mouse.wheel(0, 120);
  await page.waitForTimeout(50);
  const free = await page.evaluate(() => window.wheelSeen.splice(0));
  await page.evaluate(() => { window.editor.wheelTarget = () => window.wheelTarget; });
  await page.mouse.wheel(0, 120);
  await page.waitForTimeout(50);
  const forwarded = await page.evaluate(() => window.wheelSeen.splice(0));
  await page.evaluate(() => { window.editor.wheelTarget = null; });
  return { free, forwarded };
}

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
  // Nothing drawn yet: the object list says so (not an empty box).
  result.emptyObjectSelect = await shownOption(page, "Selected object");
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

  // The coordinate fields: captioned, and wide enough for the largest box coordinate (16384 px, 2 decimals).
  result.coordinateFields = await page.evaluate(() => window.editor.numInputs.map((input) => {
    const shown = input.value;
    input.value = "16383.75";
    const fits = input.scrollWidth <= input.clientWidth;
    input.value = shown;
    return { caption: input.labels?.[0]?.textContent ?? "", fits, value: shown };
  }));
  // The hint (no background yet) lies below the image, where the boxes do not cover it.
  result.hint = await page.evaluate(() => {
    const ed = window.editor, r = ed.hint.getBoundingClientRect();
    const [, imageBottom] = ed.imageToClient(0, ed.doc.height);
    return { text: ed.hint.textContent, visible: r.width > 0 && r.height > 0, top: r.top, imageBottom };
  });
  result.glyphFontPx = await page.evaluate(() => [window.editor.undoButton, window.editor.redoButton]
    .map((b) => parseFloat(getComputedStyle(b).fontSize)));

  // A third object reaching outside the image: flagged, then undone (Ctrl+Z) and redone and undone again.
  await drag(page, await at(610, 340), await at(660, 380));
  result.warningsWithOutside = await page.evaluate(() => window.editor.root.dataset.warnings);
  result.warningText = await page.textContent(".td-warning");
  result.wheel = await wheelOverStage(page);
  if (shots) await page.screenshot({ path: `${shots}/tracklet_editor_harness.png`, clip: await page.locator("#node").boundingBox() });
  await page.click(".td-stage canvas", { position: { x: 5, y: 5 } });
  await key("Control+z");
  await key("Control+Shift+z");
  await key("Control+z");
  await page.waitForTimeout(50);
  result.warningsAfterUndo = await page.evaluate(() => window.editor.root.dataset.warnings);
  result.tracklets = await page.evaluate(() => window.widget("tracklets_json").value);
  result.objectCountAfterUndo = JSON.parse(result.tracklets).objects.length;
  await key("Escape"); // nothing selected: the list says so instead of showing a stale entry
  result.deselectedObjectSelect = await shownOption(page, "Selected object");
  result.domWidgetSerialize = await page.evaluate(() => window.node.widgets.at(-1).options.serialize);
  result.stateHidden = await page.evaluate(() => window.widget("tracklets_json").hidden);
  // LiteGraph's row height of a widget is computeSize()[1] + 4: the hidden state widget must take none.
  result.stateRowHeight = await page.evaluate(() => window.widget("tracklets_json").computeSize()[1] + 4);

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
  result.emptyPartSelect = await shownOption(page, "Component");
  await page.click("text=+ part");
  await page.evaluate(() => { window.editor.brushInput.value = "20"; window.editor.brushInput.dispatchEvent(new Event("input")); });
  // The brush size slider is labelled, the label visible beside it.
  result.brushLabel = await page.evaluate(() => {
    const label = window.editor.brushInput.labels?.[0], r = label?.getBoundingClientRect();
    return label ? { text: label.innerText.replace(/\s+/g, " ").trim(), visible: r.width > 0 && r.height > 0 } : null;
  });
  const tat = (x, y) => page.evaluate(([a, b]) => {
    const t = window.editor.transform(), r = window.editor.canvas.getBoundingClientRect();
    return [r.left + a * t.scale + t.ox, r.top + b * t.scale + t.oy];
  }, [x, y]);
  // Hovering with the brush shows its outline (a ring of the brush's radius); leaving the canvas hides it.
  const ringPixels = () => page.evaluate(([x, y, r]) => {
    const ed = window.editor, c = ed.canvas, t = ed.transform(), dpr = c.width / c.clientWidth;
    const copy = Object.assign(document.createElement("canvas"), { width: c.width, height: c.height });
    const ctx = copy.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(c, 0, 0);
    const data = ctx.getImageData(0, 0, c.width, c.height).data;
    const cx = (x * t.scale + t.ox) * dpr, cy = (y * t.scale + t.oy) * dpr, rr = r * t.scale * dpr;
    let bright = 0;
    for (let py = Math.floor(cy - rr - 3); py <= cy + rr + 3; py++) {
      for (let px = Math.floor(cx - rr - 3); px <= cx + rr + 3; px++) {
        if (Math.abs(Math.hypot(px + 0.5 - cx, py + 0.5 - cy) - rr) > 2) continue;
        const i = (py * c.width + px) * 4;
        if (data[i] > 200 && data[i + 1] > 200 && data[i + 2] > 200) bright++;
      }
    }
    return bright;
  }, [200, 120, 10]);
  await page.mouse.move(...(await tat(200, 120)), { steps: 3 });
  await painted(page);
  result.hoverRing = await ringPixels();
  await page.mouse.move(3, 3); // off the canvas
  await painted(page);
  result.ringAfterLeave = await ringPixels();
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
  // An edit after the run: the points shown are the preview again.
  await page.click("text=brush");
  await page.mouse.click(...(await tat(250, 150)));
  await page.waitForTimeout(50);
  result.statusAfterEdit = await page.evaluate(() => window.editor.statusText.textContent);

  // Less room than the widget's minimum height (the frontend takes 2 x 10 px of margin from it): every row, the
  // status line last, stays inside the node; the canvas gives way.
  result.smallNode = await page.evaluate(async () => {
    const node = document.getElementById("node"), ed = window.editor;
    Object.assign(ed.canvas.parentElement.style, { flex: "", width: "", height: "" }); // the stage as the CSS sizes it
    node.style.height = `${380 - 20 + 16}px`; // 16: the harness node's padding
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    const inner = node.getBoundingClientRect().bottom - 8;
    return { nodeBottom: inner, rootBottom: ed.root.getBoundingClientRect().bottom,
      statusBottom: ed.statusText.getBoundingClientRect().bottom, stageHeight: ed.canvas.clientHeight };
  });
  result.errors = errors;
} finally {
  await close();
}
process.stdout.write(JSON.stringify(result));
