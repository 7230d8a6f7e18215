import assert from "node:assert/strict";
import { test } from "node:test";
import { interpolateBox, INTERPOLATIONS } from "../../js/interpolation_preview.js";
import { assertClose, REF } from "./reference.js";

test("every interpolation mode matches the Python formulas at integer and fractional times", () => {
  const modes = new Set();
  for (const obj of REF.doc.objects) {
    const kfs = obj.keyframes;
    modes.add(obj.interpolation);
    const want = REF.evaluated[String(obj.id)];
    REF.times.forEach((t, i) => {
      const got = interpolateBox(kfs.map((k) => k.frame), kfs.map((k) => k.box), kfs.map((k) => k.visible),
        obj.interpolation, t);
      assertClose(assert, got.box, want.boxes[i], 1e-9, `object ${obj.id} t=${t}`);
      assert.equal(got.visible, want.visible[i], `object ${obj.id} t=${t} visibility`);
    });
  }
  assert.deepEqual([...modes].sort(), [...INTERPOLATIONS].sort());
});

test("a keyframe reproduces its box exactly, whatever the mode", () => {
  const frames = [0, 3, 7, 9], boxes = [[0.1, 0.2, 10.3, 20.7], [5, 5, 9, 9.3], [1e6, 3, 1e6 + 1, 4], [2, 2, 3, 3]];
  for (const mode of INTERPOLATIONS) {
    frames.forEach((f, i) => assert.deepEqual(interpolateBox(frames, boxes, [1, 1, 1, 1], mode, f).box, boxes[i]));
  }
});

test("visibility is a step function and nothing shows before the first keyframe", () => {
  const r = (t) => interpolateBox([2, 5], [[0, 0, 1, 1], [2, 2, 3, 3]], [true, false], "linear", t).visible;
  assert.deepEqual([0, 1, 2, 4.9, 5, 8].map(r), [false, false, true, true, false, false]);
});
