import assert from "node:assert/strict";
import { test } from "node:test";
import { clampFrame, firstImageFile, intParam, isImageFile, loadImageRef, shortcut,
  viewQuery } from "../../js/editor_logic.js";

test("widget values become integer parameters at or above the minimum, else the fallback", () => {
  assert.equal(intParam(640, 1024), 640);
  assert.equal(intParam("360", 576), 360); // Vue widgets may hold text
  assert.equal(intParam(0, 1024), 1024); // the tracklet editor wants positive sizes
  assert.equal(intParam(0, 1024, 0), 0); // the trajectory editor's minimum is 0 (seed 0)
  assert.equal(intParam(-3, 7, 0), 7);
  assert.equal(intParam(2.5, 14), 14);
  assert.equal(intParam(undefined, 14), 14);
  assert.equal(intParam(null, 14, 1), 14); // Number(null) is 0: below the minimum
  assert.equal(intParam("abc", 9), 9);
});

test("frames round and clamp into the clip", () => {
  assert.equal(clampFrame(3.4, 9), 3);
  assert.equal(clampFrame(3.6, 9), 4);
  assert.equal(clampFrame(-2, 9), 0);
  assert.equal(clampFrame(12, 9), 8);
  assert.equal(clampFrame(5, 1), 0);
});

test("shortcuts: the Ctrl/Cmd table when a modifier is held, lower-case key names, null when unbound", () => {
  const plain = { k: "key", arrowleft: "left", " ": "play" };
  const withMod = { z: "undo" };
  assert.equal(shortcut({ key: "K" }, plain, withMod), "key");
  assert.equal(shortcut({ key: "ArrowLeft" }, plain, withMod), "left");
  assert.equal(shortcut({ key: " " }, plain, withMod), "play");
  assert.equal(shortcut({ key: "z", ctrlKey: true }, plain, withMod), "undo");
  assert.equal(shortcut({ key: "Z", metaKey: true, shiftKey: true }, plain, withMod), "undo");
  assert.equal(shortcut({ key: "k", ctrlKey: true }, plain, withMod), null);
  assert.equal(shortcut({ key: "z" }, plain, withMod), null);
  assert.equal(shortcut({ key: "constructor" }, plain, withMod), null); // own keys only, never Object's
});

test("image files are picked out of pasted or dropped files", () => {
  const text = { name: "gt.txt", type: "text/plain" }, png = { name: "a.png", type: "image/png" };
  assert.equal(isImageFile(png), true);
  assert.equal(isImageFile(text), false);
  assert.equal(isImageFile(undefined), false);
  assert.equal(firstImageFile([text, png, { name: "b.jpg", type: "image/jpeg" }]), png);
  assert.equal(firstImageFile([text]), null);
  assert.equal(firstImageFile(undefined), null);
});

test("LoadImage values become /view references; the query defaults to temp", () => {
  assert.deepEqual(loadImageRef("name.png"), { filename: "name.png", subfolder: "", type: "input" });
  assert.deepEqual(loadImageRef("sub/dir/name.png"), { filename: "name.png", subfolder: "sub/dir", type: "input" });
  assert.deepEqual(loadImageRef("name.png [output]"), { filename: "name.png", subfolder: "", type: "output" });
  assert.deepEqual(loadImageRef("a b.png [temp]"), { filename: "a b.png", subfolder: "", type: "temp" });
  assert.deepEqual(loadImageRef("x.png [other]"), { filename: "x.png [other]", subfolder: "", type: "input" });
  assert.equal(viewQuery({ filename: "a b.png" }), "filename=a+b.png&subfolder=&type=temp");
  assert.equal(viewQuery(loadImageRef("s/n.png [input]")), "filename=n.png&subfolder=s&type=input");
});
