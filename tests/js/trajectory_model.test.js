import assert from "node:assert/strict";
import { test } from "node:test";
import { arcLengthOffsets, parseState, pointsPerMask, previewPoints, rleDecode, rleEncode } from "../../js/trajectory_model.js";
import { assertClose, REF } from "./reference.js";

test("run-length masks round-trip and start with a run of zeros", () => {
  const bits = new Uint8Array([1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0]);
  const rle = rleEncode(bits, 4, 3);
  assert.deepEqual(rle, { size: [3, 4], counts: [0, 2, 3, 1, 1, 3, 2] });
  assert.deepEqual(rleDecode(rle), bits);
  assert.throws(() => rleDecode({ size: [2, 2], counts: [1, 1] }), /cover 2 pixels/);
});

test("K per mask and arc-length offsets equal the Python sampler and builder", () => {
  for (const [ratio, k] of Object.entries(REF.points_per_mask)) assert.equal(pointsPerMask(Number(ratio)), k, ratio);
  assertClose(assert, arcLengthOffsets([[0, 0], [30, 40], [30, 100]], 6), REF.arc_offsets, 1e-9);
  assert.deepEqual(arcLengthOffsets([[5, 5], [5, 5]], 3), [[0, 0], [0, 0], [0, 0]]);
});

test("preview points: K of them, inside the mask's bounding box, deterministic", () => {
  const w = 40, h = 30, bits = new Uint8Array(w * h);
  for (let y = 5; y < 15; y++) for (let x = 10; x < 30; x++) bits[y * w + x] = 1;
  const pts = previewPoints(bits, w, h, 0);
  assert.equal(pts.length, pointsPerMask(200 / 1200));
  assert.ok(pts.every(([x, y]) => x >= 10 && x < 30 && y >= 5 && y < 15));
  assert.deepEqual(previewPoints(bits, w, h, 0), pts);
  assert.deepEqual(parseState("", 8, 8).components, []);
  assert.throws(() => parseState('{"format": "other"}', 8, 8), /trajectory_editor/);
});
