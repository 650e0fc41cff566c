import {
  GroupCommit,
  KeyedGroupCommit,
  writeInGroups,
  type GroupCommitOptions,
} from '../../src/lib/group-commit';

/**
 * A write under the test's control: each call is recorded with its items and stays in flight until the
 * test settles it (`ok` answers each item with `f(item)`, `fail` throws).
 */
function aControlledWrite<R = string>(f: (item: string) => PromiseSettledResult<R>) {
  const calls: { items: string[]; ok(): void; fail(err: Error): void }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const write = (items: string[]) =>
    new Promise<PromiseSettledResult<R>[]>((resolve, reject) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      calls.push({
        items,
        ok: () => (inFlight--, resolve(items.map(f))),
        fail: (err) => (inFlight--, reject(err)),
      });
    });
  return { write, calls, maxInFlight: () => maxInFlight };
}

const upper = (item: string): PromiseSettledResult<string> => ({
  status: 'fulfilled',
  value: item.toUpperCase(),
});
const ticks = () => new Promise((r) => setImmediate(r));

function setUp(o: GroupCommitOptions = {}, f = upper) {
  const w = aControlledWrite(f);
  return { ...w, gc: new GroupCommit(w.write, o) };
}

describe('GroupCommit', () => {
  test('when a call finds nothing in flight, then it is written at once, alone', async () => {
    const { gc, calls } = setUp();
    const p = gc.submit(['a', 'b']);
    expect(calls.map((c) => c.items)).toEqual([['a', 'b']]); // synchronously: no timer, no tick
    calls[0]!.ok();
    await expect(p).resolves.toEqual(['A', 'B']);
  });

  test('when calls arrive while a write is in flight, then they go out together as the next write, each with its own results', async () => {
    const { gc, calls, maxInFlight } = setUp();
    const first = gc.submit(['a']);
    const waiting = [gc.submit(['b', 'c']), gc.submit(['d']), gc.submit(['e', 'f', 'g'])];
    expect(calls).toHaveLength(1);

    calls[0]!.ok();
    await expect(first).resolves.toEqual(['A']);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c', 'd', 'e', 'f', 'g']]);
    calls[1]!.ok();
    expect(await Promise.all(waiting)).toEqual([['B', 'C'], ['D'], ['E', 'F', 'G']]);
    expect(maxInFlight()).toBe(1);
  });

  test('when a caller is waiting, then it is not answered before the write that carries its items returns', async () => {
    const { gc, calls } = setUp();
    void gc.submit(['a']);
    let answered = false;
    void gc.submit(['b']).then(() => (answered = true));
    calls[0]!.ok();
    await ticks();
    expect(calls).toHaveLength(2);
    expect(answered).toBe(false);
    calls[1]!.ok();
    await ticks();
    expect(answered).toBe(true);
  });

  test('when one item of a batch is refused, then only the caller that submitted it is rejected', async () => {
    const refuseX = (item: string): PromiseSettledResult<string> =>
      item === 'x' ? { status: 'rejected', reason: new Error('x refused') } : upper(item);
    const { gc, calls } = setUp({}, refuseX);
    const first = gc.submit(['a']);
    const batch = [gc.submit(['b']), gc.submit(['c', 'x']), gc.submit(['d'])];
    calls[0]!.ok();
    await first;
    calls[1]!.ok();
    const settled = await Promise.allSettled(batch);
    expect(settled).toEqual([
      { status: 'fulfilled', value: ['B'] },
      { status: 'rejected', reason: new Error('x refused') },
      { status: 'fulfilled', value: ['D'] },
    ]);
  });

  test('when a write fails, then exactly the callers of that batch are rejected, and the next batch is written', async () => {
    const { gc, calls } = setUp();
    const first = gc.submit(['a']);
    const failing = [gc.submit(['b']), gc.submit(['c'])];
    calls[0]!.ok();
    await first;
    const later = gc.submit(['d']); // arrives while the failing batch is in flight
    calls[1]!.fail(new Error('database down'));
    await expect(Promise.allSettled(failing)).resolves.toEqual([
      { status: 'rejected', reason: new Error('database down') },
      { status: 'rejected', reason: new Error('database down') },
    ]);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c'], ['d']]);
    calls[2]!.ok();
    await expect(later).resolves.toEqual(['D']);
  });

  test('when the write throws synchronously or answers the wrong number of results, then its callers are rejected', async () => {
    const throwing = new GroupCommit<string, string>(() => {
      throw new Error('boom');
    });
    await expect(throwing.submit(['a'])).rejects.toThrow('boom');
    const short = new GroupCommit<string, string>(async () => [upper('a')]);
    await expect(short.submit(['a', 'b'])).rejects.toThrow('1 results for 2 items');
    await expect(short.submit(['a'])).resolves.toEqual(['A']); // still usable
  });

  test('when more items wait than a batch holds, then they go out in bounded batches, no caller split, arrival order kept', async () => {
    const { gc, calls } = setUp({ maxItems: 3 });
    const all = [
      gc.submit(['a']),
      gc.submit(['b', 'c']),
      gc.submit(['d', 'e']),
      gc.submit(['f']),
      gc.submit(['g', 'h', 'i', 'j']), // larger than a batch: goes alone, whole
      gc.submit(['k']),
    ];
    for (let i = 0; i < 5; i++) {
      calls[i]!.ok();
      await ticks();
    }
    expect(calls.map((c) => c.items)).toEqual([
      ['a'],
      ['b', 'c'],
      ['d', 'e', 'f'],
      ['g', 'h', 'i', 'j'],
      ['k'],
    ]);
    expect((await Promise.all(all)).flat()).toEqual('ABCDEFGHIJK'.split(''));
  });

  test('when maxInFlight is 2, then two writes run at once and the third waits', async () => {
    const { gc, calls, maxInFlight } = setUp({ maxInFlight: 2 });
    const all = [gc.submit(['a']), gc.submit(['b']), gc.submit(['c']), gc.submit(['d'])];
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b']]);
    calls[1]!.ok();
    await ticks();
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b'], ['c', 'd']]);
    calls[0]!.ok();
    calls[2]!.ok();
    expect(await Promise.all(all)).toEqual([['A'], ['B'], ['C'], ['D']]);
    expect(maxInFlight()).toBe(2);
  });

  test('when nothing is submitted, then nothing is written', async () => {
    const { gc, calls } = setUp();
    await expect(gc.submit([])).resolves.toEqual([]);
    expect(calls).toHaveLength(0);
  });
});

describe('KeyedGroupCommit', () => {
  function keyed() {
    const calls: { key: string; items: string[]; ok(): void }[] = [];
    const gc = new KeyedGroupCommit<string, string>(
      (key, items) =>
        new Promise((resolve) =>
          calls.push({ key, items, ok: () => resolve(items.map((i) => upper(`${key}:${i}`))) }),
        ),
    );
    return { gc, calls };
  }

  test('when writes for one key queue behind one in flight, then they go out as one, after it', async () => {
    const { gc, calls } = keyed();
    const first = gc.submit('head', ['a']);
    const queued = [gc.submit('head', ['b']), gc.submit('head', ['c'])];
    expect(calls.map((c) => c.items)).toEqual([['a']]); // never two writes of one key at once

    calls[0]!.ok();
    await expect(first).resolves.toEqual(['HEAD:A']);
    expect(calls.map((c) => c.items)).toEqual([['a'], ['b', 'c']]);
    calls[1]!.ok();
    expect(await Promise.all(queued)).toEqual([['HEAD:B'], ['HEAD:C']]);
  });

  test('when two keys are written at once, then neither waits for the other', async () => {
    const { gc, calls } = keyed();
    const one = gc.submit('page:1', ['a']);
    const two = gc.submit('page:2', ['b']);
    expect(calls.map((c) => [c.key, c.items])).toEqual([
      ['page:1', ['a']],
      ['page:2', ['b']],
    ]);
    calls[1]!.ok();
    await expect(two).resolves.toEqual(['PAGE:2:B']);
    calls[0]!.ok();
    await expect(one).resolves.toEqual(['PAGE:1:A']);
  });

  test('when a key has nothing pending any more, then it is forgotten (and a later write starts afresh)', async () => {
    const { gc, calls } = keyed();
    const p = gc.submit('k', ['a']);
    calls[0]!.ok();
    await p;
    expect((gc as unknown as { groups: Map<string, unknown> }).groups.size).toBe(0);

    const again = gc.submit('k', ['b']);
    expect(calls).toHaveLength(2);
    calls[1]!.ok();
    await expect(again).resolves.toEqual(['K:B']);
  });
});

describe('writeInGroups', () => {
  test('when one group of a batch fails, then only its items are rejected and the others keep their results, in order', async () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const items = [
      { db: a, v: 1 },
      { db: b, v: 2 },
      { db: a, v: 3 },
    ];
    const writes: string[] = [];

    const settled = await writeInGroups(
      items,
      (i) => i.db,
      async (db, mine) => {
        writes.push(`${db.name}:${mine.map((i) => i.v).join(',')}`);
        if (db === b) throw new Error('closed');
        return mine.map((i) => ({ status: 'fulfilled' as const, value: i.v * 10 }));
      },
    );

    expect(writes).toEqual(['a:1,3', 'b:2']);
    expect(settled).toEqual([
      { status: 'fulfilled', value: 10 },
      { status: 'rejected', reason: new Error('closed') },
      { status: 'fulfilled', value: 30 },
    ]);
  });
});
