import assert from "node:assert/strict";
import { test } from "node:test";
import { UndoStack } from "../../js/undo.js";

test("undo and redo walk the snapshots both ways", () => {
  const u = new UndoStack();
  let state = "a";
  for (const next of ["b", "c"]) { u.push(state); state = next; }
  state = u.undo(state); assert.equal(state, "b");
  state = u.undo(state); assert.equal(state, "a");
  assert.equal(u.undo(state), null);
  state = u.redo(state); assert.equal(state, "b");
  state = u.redo(state); assert.equal(state, "c");
  assert.equal(u.redo(state), null);
});

test("a new edit drops the redo branch; repeated snapshots are stored once; the limit holds", () => {
  const u = new UndoStack(3);
  u.push("a"); u.push("a");
  assert.equal(u.past.length, 1);
  assert.equal(u.undo("b"), "a");
  assert.ok(u.canRedo);
  u.push("a");
  assert.ok(!u.canRedo);
  for (const s of ["b", "c", "d", "e"]) u.push(s);
  assert.deepEqual(u.past, ["c", "d", "e"]);
  u.clear();
  assert.ok(!u.canUndo && !u.canRedo);
});
