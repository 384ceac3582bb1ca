/**
 * An array-backed double-ended queue (ring buffer, power-of-two capacity, grows by doubling).
 * pushFront / pushBack / popFront / popBack / at are O(1); insertAt / removeAt shift the elements behind
 * the position, O(distance to the back): cheap near the back, which is where FCFS arrivals go.
 *
 *   capacity 8, head 6, length 4:   buf = [ c d . . . . a b ]     logical order a b c d
 *                                           0 1         6 7       element i lives at (head + i) & mask
 */
export class Deque<T> {
  private buf: (T | undefined)[];
  private head = 0;
  private size = 0;
  private mask: number;

  constructor(initialCapacity = 16) {
    let cap = 1;
    while (cap < initialCapacity) cap <<= 1;
    this.buf = new Array<T | undefined>(cap);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.size;
  }

  /** The i-th element from the front (undefined when out of range). */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.size) return undefined;
    return this.buf[(this.head + i) & this.mask];
  }

  peekFront(): T | undefined {
    return this.size === 0 ? undefined : this.buf[this.head];
  }

  peekBack(): T | undefined {
    return this.size === 0 ? undefined : this.buf[(this.head + this.size - 1) & this.mask];
  }

  pushBack(x: T): void {
    if (this.size === this.buf.length) this.grow();
    this.buf[(this.head + this.size) & this.mask] = x;
    this.size++;
  }

  pushFront(x: T): void {
    if (this.size === this.buf.length) this.grow();
    this.head = (this.head - 1) & this.mask;
    this.buf[this.head] = x;
    this.size++;
  }

  popFront(): T | undefined {
    if (this.size === 0) return undefined;
    const x = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.size--;
    return x;
  }

  popBack(): T | undefined {
    if (this.size === 0) return undefined;
    const i = (this.head + this.size - 1) & this.mask;
    const x = this.buf[i];
    this.buf[i] = undefined;
    this.size--;
    return x;
  }

  /** Inserts x so that it becomes element i (0 = front, length = back). */
  insertAt(i: number, x: T): void {
    if (i < 0 || i > this.size) throw new RangeError(`insertAt ${i} in a deque of ${this.size}`);
    if (i === 0) {
      this.pushFront(x);
      return;
    }
    if (this.size === this.buf.length) this.grow();
    // Shift elements i..size-1 one place back, then drop x into the hole.
    for (let k = this.size; k > i; k--) {
      this.buf[(this.head + k) & this.mask] = this.buf[(this.head + k - 1) & this.mask];
    }
    this.buf[(this.head + i) & this.mask] = x;
    this.size++;
  }

  /** Removes and returns element i. */
  removeAt(i: number): T {
    if (i < 0 || i >= this.size) throw new RangeError(`removeAt ${i} in a deque of ${this.size}`);
    if (i === 0) return this.popFront() as T;
    const x = this.buf[(this.head + i) & this.mask] as T;
    for (let k = i; k < this.size - 1; k++) {
      this.buf[(this.head + k) & this.mask] = this.buf[(this.head + k + 1) & this.mask];
    }
    this.buf[(this.head + this.size - 1) & this.mask] = undefined;
    this.size--;
    return x;
  }

  indexOf(x: T): number {
    for (let i = 0; i < this.size; i++) if (this.buf[(this.head + i) & this.mask] === x) return i;
    return -1;
  }

  /** Removes the first occurrence of x; false when absent. */
  remove(x: T): boolean {
    const i = this.indexOf(x);
    if (i < 0) return false;
    this.removeAt(i);
    return true;
  }

  clear(): void {
    this.buf.fill(undefined);
    this.head = 0;
    this.size = 0;
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.size; i++) out.push(this.buf[(this.head + i) & this.mask] as T);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.buf[(this.head + i) & this.mask] as T;
  }

  private grow(): void {
    const old = this.buf;
    const cap = old.length * 2;
    const buf = new Array<T | undefined>(cap);
    for (let i = 0; i < this.size; i++) buf[i] = old[(this.head + i) & this.mask];
    this.buf = buf;
    this.head = 0;
    this.mask = cap - 1;
  }
}
