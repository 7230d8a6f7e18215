// The values the Python side computes (make_python_reference.py writes them; test_python_reference.py keeps them
// current), so these tests prove the JS previews and exporters agree with what the node will do.
import { readFileSync } from "node:fs";

export const REF = JSON.parse(readFileSync(new URL("./python_reference.json", import.meta.url), "utf8"));

/** Deep equality of numbers to within tol (float64 on both sides; only the operation order may differ). */
export function assertClose(assert, actual, expected, tol = 1e-9, path = "") {
  if (typeof expected === "number") {
    assert.ok(Math.abs(actual - expected) <= tol * Math.max(1, Math.abs(expected)), `${path}: ${actual} != ${expected}`);
  } else if (Array.isArray(expected)) {
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => assertClose(assert, actual[i], e, tol, `${path}[${i}]`));
  } else if (expected && typeof expected === "object") {
    assert.deepEqual(Object.keys(actual), Object.keys(expected), `${path}: keys`);
    for (const k of Object.keys(expected)) assertClose(assert, actual[k], expected[k], tol, `${path}.${k}`);
  } else {
    assert.equal(actual, expected, path);
  }
}
