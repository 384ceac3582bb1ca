import assert from "node:assert/strict";
import { test } from "node:test";
import { Deque } from "../../src/scheduler/deque.ts";

test("deque: both ends, wrap-around growth, insertAt and removeAt keep order", () => {
  const d = new Deque<number>(2);
  d.pushBack(1);
  d.pushBack(2);
  d.pushFront(0);
  d.pushFront(-1); // grows while wrapped
  assert.deepEqual(d.toArray(), [-1, 0, 1, 2]);
  assert.equal(d.popFront(), -1);
  assert.equal(d.popBack(), 2);
  d.insertAt(1, 9);
  d.insertAt(0, 8);
  d.insertAt(d.length, 7);
  assert.deepEqual([...d], [8, 0, 9, 1, 7]);
  assert.equal(d.removeAt(2), 9);
  assert.equal(d.remove(7), true);
  assert.equal(d.remove(42), false);
  assert.deepEqual(d.toArray(), [8, 0, 1]);
  assert.equal(d.peekFront(), 8);
  assert.equal(d.peekBack(), 1);
  assert.equal(d.at(1), 0);
  assert.equal(d.at(3), undefined);
  d.clear();
  assert.equal(d.length, 0);
  assert.equal(d.popFront(), undefined);
});

test("deque: matches an array model under random operations", () => {
  let x = 7;
  const rnd = (n: number) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
  const d = new Deque<number>(1);
  const model: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const op = rnd(6);
    if (op === 0) {
      d.pushBack(i);
      model.push(i);
    } else if (op === 1) {
      d.pushFront(i);
      model.unshift(i);
    } else if (op === 2) assert.equal(d.popFront(), model.shift());
    else if (op === 3) assert.equal(d.popBack(), model.pop());
    else if (op === 4) {
      const k = rnd(model.length + 1);
      d.insertAt(k, i);
      model.splice(k, 0, i);
    } else if (model.length > 0) {
      const k = rnd(model.length);
      assert.equal(d.removeAt(k), model.splice(k, 1)[0]);
    }
    assert.equal(d.length, model.length);
  }
  assert.deepEqual(d.toArray(), model);
});
