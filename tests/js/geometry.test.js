import assert from "node:assert/strict";
import { test } from "node:test";
import { boxFromPoints, cursorFor, dragBox, fitTransform, hitTest, isOutside, isWhollyOutside, roundBox, toImage,
  toView } from "../../js/geometry.js";

test("boxFromPoints sorts corners whichever way the user dragged", () => {
  assert.deepEqual(boxFromPoints(50, 40, 10, 90), [10, 40, 50, 90]);
});

test("hit testing finds corners, edges, the inside and nothing", () => {
  const b = [10, 10, 110, 60];
  assert.equal(hitTest(b, 11, 9, 4), "nw");
  assert.equal(hitTest(b, 60, 61, 4), "s");
  assert.equal(hitTest(b, 110, 35, 4), "e");
  assert.equal(hitTest(b, 50, 30, 4), "move");
  assert.equal(hitTest(b, 200, 30, 4), null);
  assert.equal(cursorFor("ne"), "nesw-resize");
  assert.equal(cursorFor(null), "crosshair");
});

test("dragging handles resizes one side, moving translates, crossing flips instead of inverting", () => {
  const b = [10, 10, 110, 60];
  assert.deepEqual(dragBox(b, "se", 5, -5), [10, 10, 115, 55]);
  assert.deepEqual(dragBox(b, "w", 20, 99), [30, 10, 110, 60]);
  assert.deepEqual(dragBox(b, "move", -20, 5), [-10, 15, 90, 65]);
  assert.deepEqual(dragBox(b, "e", -150, 0), [-40, 10, 10, 60]); // dragged past the left edge: flipped
  assert.deepEqual(dragBox(b, "n", 0, 50, 1), [10, 60, 110, 61]); // collapsed edge keeps the minimum size
});

test("outside checks match the Python warning (any part out) and hiding (nothing left in)", () => {
  assert.equal(isOutside([-1, 0, 10, 10], 100, 50), true);
  assert.equal(isOutside([0, 0, 100, 50], 100, 50), false);
  assert.equal(isWhollyOutside([100, 0, 120, 10], 100, 50), true);
  assert.equal(isWhollyOutside([90, 0, 120, 10], 100, 50), false);
});

test("the view transform fits the image with a margin and round-trips", () => {
  const t = fitTransform(1024, 576, 600, 400, 20);
  assert.ok(Math.abs(t.scale - 560 / 1024) < 1e-12);
  const [vx, vy] = toView(t, 300, 200);
  assert.deepEqual(toImage(t, vx, vy).map((v) => Math.round(v * 1e9) / 1e9), [300, 200]);
  assert.deepEqual(roundBox([1.234, 2.345, 3.999, 4]), [1.23, 2.35, 4, 4]);
});
