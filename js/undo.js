// Snapshot undo/redo. The editors' whole state serialises to a short JSON string, so storing snapshots is simpler
// and safer than inverse operations: an undo can never drift from what was saved.

export class UndoStack {
  constructor(limit = 200) {
    this.limit = limit;
    this.past = [];
    this.future = [];
  }

  /** Record the state *before* an edit. Identical consecutive snapshots are kept once (a click that changed nothing). */
  push(snapshot) {
    if (this.past.length && this.past[this.past.length - 1] === snapshot) return;
    this.past.push(snapshot);
    if (this.past.length > this.limit) this.past.shift();
    this.future.length = 0; // a new edit forks history: the redo branch is gone
  }

  get canUndo() { return this.past.length > 0; }
  get canRedo() { return this.future.length > 0; }

  /** The state to restore, given the current one (which becomes redoable); null when there is nothing to undo. */
  undo(current) {
    if (!this.past.length) return null;
    this.future.push(current);
    return this.past.pop();
  }

  redo(current) {
    if (!this.future.length) return null;
    this.past.push(current);
    return this.future.pop();
  }

  clear() {
    this.past.length = 0;
    this.future.length = 0;
  }
}
